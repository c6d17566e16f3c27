"""Who is asking: bearer tokens resolved to a principal, and what each principal may see or do."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Pool
from vigil.tokens import find_token, refusal, token_digest

_bearer = HTTPBearer(auto_error=False, description="An API token from `vigil token create`.")


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an admin sees everything, a care manager their own members."""

    role: Literal["admin", "care_manager"]
    care_manager_id: str | None = None
    # The stored token's id (`tok_...`); None for the environment's admin token.
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """Who acted, as histories and the audit log name them: `care_manager:<id>`, `admin:<token id>`, `admin:env`."""
        if not self.is_admin:
            return f"care_manager:{self.care_manager_id}"
        return f"admin:{self.token_id or 'env'}"

    def may_see(self, member_care_manager_id: str | None) -> bool:
        """Whether a member assigned to `member_care_manager_id` is visible to this caller."""
        return self.is_admin or (
            self.care_manager_id is not None and member_care_manager_id == self.care_manager_id
        )


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    pool: Pool,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the `Authorization: Bearer` header, or 401; looked up on every request, so a
    token revoked or expired a moment ago is refused now (the environment's admin token never expires)."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized("an API token is required: Authorization: Bearer <token>")
    token = credentials.credentials
    admin_token = request.app.state.settings.admin_token
    # Constant-time, so response timing does not reveal how much of the admin token a guess matched.
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal("admin")
    async with pool.connection() as conn:
        stored = await find_token(conn, token_digest(token))
    if reason := refusal(stored):  # None too: an unknown token
        raise _unauthorized(reason)
    if stored.role == "admin":
        return Principal("admin", token_id=stored.id)
    return Principal("care_manager", stored.care_manager_id, token_id=stored.id)


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    """Registering members, care managers, devices and gateways and reading the audit log are an operator's
    job, not a care manager's."""
    if not principal.is_admin:
        raise HTTPException(403, "only an admin token may do this")
    return principal


def check_member_visible(principal: Principal, member_care_manager_id: str | None) -> None:
    """403 unless the member is assigned to the calling care manager (admins see all)."""
    if not principal.may_see(member_care_manager_id):
        raise HTTPException(403, "this member is not assigned to you")


Caller = Annotated[Principal, Depends(authenticate)]
Admin = Annotated[Principal, Depends(require_admin)]
