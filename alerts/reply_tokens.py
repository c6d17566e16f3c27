"""One-tap "I'm OK" links: `{VIGIL_PUBLIC_URL}/r/{token}` in every message to a member.

The token is the credential (the member has no API token), so only its SHA-256 digest is stored, as
for API tokens. It names the alerts its message was about (several when alerts were grouped into
one message) and works while one of them is not resolved.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import psycopg
from psycopg import AsyncConnection

from vigil.storage.rows import fetch_all
from vigil.tokens import token_digest

# 32 bytes of randomness, URL-safe; the pattern also bounds what a lookup takes.
TOKEN_BYTES = 32
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"
_TOKEN = re.compile(TOKEN_PATTERN)
_INSERT = "INSERT INTO reply_tokens (token_sha256, alert_id) SELECT %s, unnest(%s::uuid[])"
# What the reply page says and what the reply acts on: the alert, its member's name and time zone, the
# device's room.
_LOOKUP = """
SELECT a.id::text AS id, a.type, a.severity, a.status, a.triggered_at, a.raised_at, a.resolved_at,
       a.outcome, m.name AS member_name, coalesce(m.timezone, 'UTC') AS member_timezone, d.location
FROM reply_tokens r JOIN alerts a ON a.id = r.alert_id
LEFT JOIN members m ON m.id = a.member_id LEFT JOIN devices d ON d.device_id = a.device_id
WHERE r.token_sha256 = %s
ORDER BY a.status = 'resolved', a.raised_at
"""


def reply_url(public_url: str, token: str) -> str:
    """The link put in the member's message."""
    return f"{public_url.rstrip('/')}/r/{token}"


async def issue_reply_token(conn: AsyncConnection, alert_id: str | uuid.UUID, *more: str | uuid.UUID) -> str:
    """A new token for `alert_id` (and `more` alerts of the same message), stored on `conn` (it commits
    with the caller's transaction)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    await conn.execute(_INSERT, (token_digest(token), [str(a) for a in (alert_id, *more)]))
    return token


def issue_reply_token_sync(conn: psycopg.Connection, alert_id: str | uuid.UUID, *more: str | uuid.UUID) -> str:
    """`issue_reply_token` for the scheduler's synchronous connections."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    conn.execute(_INSERT, (token_digest(token), [str(a) for a in (alert_id, *more)]))
    return token


async def find_reply_alerts(conn: AsyncConnection, token: str) -> list[dict[str, Any]]:
    """The alerts a token names, unresolved first (resolved ones too, so the page can say so); [] for an
    unknown token."""
    if not _TOKEN.fullmatch(token):
        return []
    return await fetch_all(conn, _LOOKUP, (token_digest(token),))


async def find_reply_alert(conn: AsyncConnection, token: str) -> dict[str, Any] | None:
    """The alert the reply page speaks of: the oldest unresolved one of the token, else any; None if unknown."""
    found = await find_reply_alerts(conn, token)
    return found[0] if found else None
