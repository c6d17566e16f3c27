"""API tokens: random bearer secrets of which only a SHA-256 digest is ever stored.

Each token also has a non-secret id (`tok_...`, printed when it is issued and by `vigil token list`)
so that an operator who never held the secret can still revoke it, and an optional expiry. Both are
checked on every request: revoking or expiring takes effect at the next call.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from vigil.storage import StorageError

TOKEN_PREFIX = "vgl_"  # lets secret scanners and people recognise a leaked Vigil token
ID_PREFIX = "tok_"
ROLES = ("admin", "care_manager")
# `--expires-in`: a whole number and one unit, minutes to weeks; at most ten years.
_LIFETIME = re.compile(r"([0-9]{1,6})([mhdw])")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
MAX_LIFETIME = timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What issuing a token hands back: the secret (shown once), its id and when it expires."""

    token: str
    id: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token's row as the API checks it, with the database's clock at the moment of the check."""

    id: str
    role: str
    care_manager_id: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    checked_at: datetime


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The form a token is stored and looked up in, so a leaked table grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_lifetime(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` -> a timedelta; ValueError saying what is accepted for anything else."""
    match = _LIFETIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a lifetime: give a number and a unit m, h, d or w, such as 30d or 12h")
    lifetime = int(match.group(1)) * _UNITS[match.group(2)]
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"{text!r} is out of range: more than 0 and at most 3650d")
    return lifetime


def refusal(stored: StoredToken | None) -> str | None:
    """Why a presented token may not be used (the 401's sentence), or None when it may."""
    if stored is None:
        return "the API token is unknown"
    if stored.revoked_at is not None:
        return "the API token has been revoked"
    if stored.expires_at is not None and stored.expires_at <= stored.checked_at:
        return "the API token has expired; ask for a new one"
    if stored.role == "care_manager" and not stored.care_manager_id:
        # Only hand-made rows lack it (`create_token` refuses); such a token must not see everyone.
        return "this care manager token names no care manager; issue a new one"
    return None


def token_state(row: dict[str, Any], now: datetime) -> str:
    """`active`, `expired` or `revoked`, for `vigil token list`."""
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


def check_role(role: str, care_manager_id: str | None) -> None:
    """Refuse a role/care-manager pairing that could not be enforced later."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "care_manager" and not care_manager_id:
        raise ValueError("a care_manager token needs the care manager's id (--care-manager)")
    if role == "admin" and care_manager_id:
        raise ValueError("an admin token sees every member and takes no care manager id")


def create_token(
    conn: psycopg.Connection, role: str, care_manager_id: str | None = None, *, lifetime: timedelta | None = None
) -> IssuedToken:
    """Store a new token's digest on `conn` (the caller commits); the expiry is counted on the database's clock."""
    check_role(role, care_manager_id)
    token = new_token()
    row = conn.execute(
        "INSERT INTO api_tokens (token_sha256, role, care_manager_id, expires_at) "
        "VALUES (%s, %s, %s, now() + %s::interval) RETURNING id, expires_at",
        (token_digest(token), role, care_manager_id, lifetime),
    ).fetchone()
    return IssuedToken(token, *row)


def issue(
    database_url: str, role: str, care_manager_id: str | None = None, *, lifetime: timedelta | None = None
) -> IssuedToken:
    """Create and commit a token; what `vigil token create` prints."""
    check_role(role, care_manager_id)
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            return create_token(conn, role, care_manager_id, lifetime=lifetime)
    except psycopg.Error as e:
        raise StorageError(f"could not store the new API token: {e}") from e


def issue_token(database_url: str, role: str, care_manager_id: str | None = None) -> str:
    """A new token that never expires, for the demo, the benchmark and tests."""
    return issue(database_url, role, care_manager_id).token


def revoke(database_url: str, token_or_id: str) -> tuple[str, datetime] | None:
    """Revoke a token named by itself (`vgl_...`) or by its id (`tok_...`): its id and when it was revoked.

    Revoking twice keeps the first moment. None when no token matches.
    """
    by_secret = token_or_id.startswith(TOKEN_PREFIX)
    key = token_digest(token_or_id) if by_secret else token_or_id
    query = sql.SQL(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE {} = %s RETURNING id, revoked_at"
    ).format(sql.Identifier("token_sha256" if by_secret else "id"))
    try:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            row = conn.execute(query, (key,)).fetchone()
    except psycopg.Error as e:
        raise StorageError(f"could not revoke the API token: {e}") from e
    return (row[0], row[1]) if row else None


def list_tokens(database_url: str) -> tuple[list[dict[str, Any]], datetime]:
    """Every token's id, role, care manager and lifetime (never its digest), oldest first, and the database's now."""
    try:
        with psycopg.connect(database_url, connect_timeout=5, row_factory=dict_row) as conn:
            rows = conn.execute(
                "SELECT id, role, care_manager_id, created_at, expires_at, revoked_at FROM api_tokens "
                "ORDER BY created_at, id"
            ).fetchall()
            now = conn.execute("SELECT now() AS now").fetchone()["now"]
    except psycopg.Error as e:
        raise StorageError(f"could not list the API tokens: {e}") from e
    return rows, now


async def find_token(conn: psycopg.AsyncConnection, digest: str) -> StoredToken | None:
    """The stored token with this digest, revoked or expired too, so the answer can say which."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, role, care_manager_id, expires_at, revoked_at, now() AS checked_at "
            "FROM api_tokens WHERE token_sha256 = %s",
            (digest,),
        )
        row = await cur.fetchone()
    return StoredToken(**row) if row else None
