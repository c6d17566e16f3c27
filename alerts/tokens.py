"""API tokens: random bearer secrets of which only a SHA-256 digest is ever stored."""

from __future__ import annotations

import hashlib
import secrets

import psycopg
from psycopg.rows import tuple_row

from vigil.storage import StorageError

TOKEN_PREFIX = "vgl_"  # lets secret scanners and people recognise a leaked Vigil token
ROLES = ("admin", "care_manager")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The form a token is stored and looked up in, so a leaked table grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str, care_manager_id: str | None) -> None:
    """Refuse a role/care-manager pairing that could not be enforced later."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "care_manager" and not care_manager_id:
        raise ValueError("a care_manager token needs the care manager's id (--care-manager)")
    if role == "admin" and care_manager_id:
        raise ValueError("an admin token sees every member and takes no care manager id")


def create_token(conn: psycopg.Connection, role: str, care_manager_id: str | None = None) -> str:
    """Store a new token's digest on `conn` (the caller commits) and return the plain token."""
    check_role(role, care_manager_id)
    token = new_token()
    conn.execute(
        "INSERT INTO api_tokens (token_sha256, role, care_manager_id) VALUES (%s, %s, %s)",
        (token_digest(token), role, care_manager_id),
    )
    return token


def issue_token(database_url: str, role: str, care_manager_id: str | None = None) -> str:
    """Create and commit a token; what `vigil token create` prints."""
    check_role(role, care_manager_id)
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            return create_token(conn, role, care_manager_id)
    except psycopg.Error as e:
        raise StorageError(f"could not store the new API token: {e}") from e


async def find_token(conn: psycopg.AsyncConnection, digest: str) -> tuple[str, str | None] | None:
    """The role and care manager of a live (unrevoked) token, looked up by digest."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT role, care_manager_id FROM api_tokens WHERE token_sha256 = %s AND revoked_at IS NULL",
            (digest,),
        )
        row = await cur.fetchone()
    return (row[0], row[1]) if row else None
