"""Dropping telemetry older than the retention window, in small batches so writers never wait long.

On TimescaleDB the retention policy drops whole chunks of `readings`; the message ledger and the
dead letters are plain tables on both flavours and are trimmed here.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

_BATCH = 50_000
_TABLES = {"readings": "ts", "messages": "received_at", "dead_letters": "received_at"}


def trim(conn: psycopg.Connection, *, retention_days: int, timescale: bool) -> dict[str, int]:
    """Delete rows older than the window from each table; returns rows deleted per table."""
    deleted: dict[str, int] = {}
    for table, column in _TABLES.items():
        if timescale and table == "readings":
            continue
        statement = sql.SQL(
            "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} "
            "WHERE {column} < now() - make_interval(days => %s) LIMIT %s)"
        ).format(table=sql.Identifier(table), column=sql.Identifier(column))
        total = 0
        while True:
            with conn.transaction():
                count = conn.execute(statement, (retention_days, _BATCH)).rowcount
            total += count
            if count < _BATCH:
                break
        deleted[table] = total
    return deleted
