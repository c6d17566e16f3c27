"""The audit log of reads of members' health data (readings, alert evidence, the member card).

A row is written on the connection that served the read, so it commits with the request: a read
whose answer was refused or failed leaves no row, and one that was answered always does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from vigil.storage.rows import fetch_all

READ_READINGS = "read_readings"
READ_ALERT = "read_alert"
LIST_ALERTS = "list_alerts"
READ_MEMBER_CARD = "read_member_card"


async def record_read(
    conn: AsyncConnection, actor: str, role: str, action: str, member_id: str | None, subject: str
) -> None:
    """Record that `actor` (`Principal.actor`) read `subject` of `member_id` (None: not one member's)."""
    await conn.execute(
        "INSERT INTO audit_log (actor, role, action, member_id, subject) VALUES (%s, %s, %s, %s, %s)",
        (actor, role, action, member_id, subject),
    )


async def list_reads(
    conn: AsyncConnection, *, member_id: str | None, since: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Audit rows newest first, optionally of one member and from `since` on."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    if member_id is not None:
        where.append(sql.SQL("member_id = %s"))
        params.append(member_id)
    if since is not None:
        where.append(sql.SQL("at >= %s"))
        params.append(since)
    query = sql.SQL(
        "SELECT id, at, actor, role, action, member_id, subject FROM audit_log WHERE {} ORDER BY at DESC, id DESC "
        "LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    return await fetch_all(conn, query, [*params, limit])
