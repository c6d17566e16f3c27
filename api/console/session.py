"""Signing in to the console: the API token in an HttpOnly cookie, checked as the API checks a bearer token.

The cookie holds the token itself, so revoking or expiring the token signs the console out at its
next request, exactly as it stops the API. SameSite=Strict keeps other sites from posting the
console's forms with it; the Origin check is the second lock for browsers that ignore SameSite.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from fastapi import HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from psycopg_pool import AsyncConnectionPool

from api.auth import Principal, authenticate

COOKIE = "vigil_console"
FLASH_COOKIE = "vigil_flash"
# A flash message lives until the page it was meant for is shown.
FLASH_MAX_AGE_S = 60


class SignedOut(Exception):
    """No valid console session; `reason` says why when there was a cookie."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason or "not signed in")
        self.reason = reason


async def check_token(request: Request, pool: AsyncConnectionPool, token: str) -> Principal:
    """The principal behind `token`, by the API's own bearer check; `SignedOut` with its reason otherwise."""
    try:
        return await authenticate(request, pool, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))
    except HTTPException as e:
        raise SignedOut(str(e.detail)) from e


async def signed_in(request: Request, pool: AsyncConnectionPool) -> Principal:
    """The principal of the request's session cookie; `SignedOut` without one or when its token stopped working."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignedOut(None)
    return await check_token(request, pool, token)


def start_session(response: Response, request: Request, token: str) -> None:
    # No Max-Age: the session ends with the browser, the token's own expiry ends it sooner.
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=_https(request), path="/")


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=_https(request), path="/")


def same_origin(request: Request) -> bool:
    """Whether a form post comes from a page of this site (a browser sends Origin with every POST)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-site post: those always carry Origin
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def local_path(target: str | None) -> str:
    """`target` when it is a path on this site, else `/`: a sign-in link must not send anyone elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def set_flash(response: Response, request: Request, kind: str, text: str) -> None:
    """A one-time message for the page the response redirects to (`ok` or `error`)."""
    response.set_cookie(FLASH_COOKIE, quote(f"{kind}:{text}"), max_age=FLASH_MAX_AGE_S, httponly=True,
                        samesite="strict", secure=_https(request), path="/")


def read_flash(request: Request) -> tuple[str, str] | None:
    """The pending one-time message (kind, text); `clear_flash` removes it once shown."""
    raw = request.cookies.get(FLASH_COOKIE)
    if raw is None:
        return None
    kind, _, text = unquote(raw).partition(":")
    return ("error" if kind == "error" else "ok"), text


def clear_flash(response: Response, request: Request) -> None:
    response.delete_cookie(FLASH_COOKIE, httponly=True, samesite="strict", secure=_https(request), path="/")


def _https(request: Request) -> bool:
    return request.url.scheme == "https"
