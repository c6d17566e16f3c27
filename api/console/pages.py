"""What every console page handler does: find who is signed in, render a template in their time zone,
say no in plain words, and answer a form post with a redirect carrying a one-time message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from psycopg_pool import AsyncConnectionPool

from api.auth import Principal
from api.console import queries, session
from api.console.templating import TEMPLATES


async def principal_of(request: Request, pool: AsyncConnectionPool) -> Principal | None:
    """The signed-in caller, or None."""
    try:
        return await session.signed_in(request, pool)
    except session.SignedOut:
        return None


async def render(
    request: Request, pool: AsyncConnectionPool, principal: Principal | None, template: str,
    context: dict[str, Any], status_code: int = 200,
) -> Response:
    """A page in the viewer's time zone, carrying (and clearing) the pending one-time message.

    A fragment (a template named `_...`, fetched by the page script) leaves the message for its page.
    """
    now = datetime.now(UTC)
    viewer = None
    if principal is not None:
        async with pool.connection() as conn:
            viewer = await queries.viewer(conn, principal.care_manager_id)
    flash = None if template.startswith("_") else session.read_flash(request)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "viewer_name": viewer["name"] if viewer else ("Admin" if principal and principal.is_admin else
                                                           principal and principal.care_manager_id),
            "tz": (viewer and viewer["timezone"]) or "UTC",
            "now": now,
            "flash": flash,
            **context,
        },
        status_code=status_code,
    )
    if flash is not None:
        session.clear_flash(response, request)
    return response


async def problem(
    request: Request, pool: AsyncConnectionPool, principal: Principal | None, status_code: int, title: str,
    text: str,
) -> Response:
    """A page saying no (`title`) and why (`text`), with the way back to the queue."""
    return await render(request, pool, principal, "problem.html", {"title": title, "text": text}, status_code)


async def forbidden(
    request: Request, pool: AsyncConnectionPool, principal: Principal | None, what: str = "alert"
) -> Response:
    """403: the `what` (an alert, a task, a claim) is about another care manager's member."""
    return await problem(
        request, pool, principal, 403, "Not your member",
        f"This {what} is about a member who is not assigned to you, so the console will not show it. "
        "If you need to act on it, ask the member's care manager or an admin.",
    )


def to_sign_in(request: Request) -> Response:
    """To the sign-in form, coming back here once signed in."""
    return RedirectResponse("/?next=" + quote(request.url.path), status_code=303)


def redirect_with(request: Request, target: str, kind: str, text: str) -> Response:
    """Post-redirect-get to `target`, showing `text` there once (`kind`: `ok` or `error`)."""
    response = RedirectResponse(target, status_code=303)
    session.set_flash(response, request, kind, text)
    return response


async def cross_site(request: Request, pool: AsyncConnectionPool, principal: Principal | None) -> Response:
    """The answer to a form posted from another site (`session.same_origin` said no)."""
    return await problem(request, pool, principal, 403, "Refused", "This form was posted from another site.")
