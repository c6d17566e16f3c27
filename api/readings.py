"""SQL for stored readings as the API serves them: one device, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from vigil.storage.rows import fetch_all


async def device_readings(
    conn: AsyncConnection,
    device_id: str,
    *,
    metric: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Readings with `since <= ts < until`, newest event time first (ties: highest seq first)."""
    where = [sql.SQL("device_id = %s")]
    params: list[Any] = [device_id]
    if metric is not None:
        where.append(sql.SQL("metric = %s"))
        params.append(metric)
    if since is not None:
        where.append(sql.SQL("ts >= %s"))
        params.append(since)
    if until is not None:
        where.append(sql.SQL("ts < %s"))
        params.append(until)
    query = sql.SQL(
        "SELECT ts, metric, value, seq FROM readings WHERE {} ORDER BY ts DESC, seq DESC LIMIT %s"
    )
    return await fetch_all(conn, query.format(sql.SQL(" AND ").join(where)), [*params, limit])
