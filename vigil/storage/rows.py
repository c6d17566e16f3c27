"""Rows as dicts whatever row factory the connection was opened with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

Query = str | sql.Composed | sql.SQL
Params = Sequence[Any] | dict[str, Any]


async def fetch_one(conn: AsyncConnection, query: Query, params: Params = ()) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()


async def fetch_all(conn: AsyncConnection, query: Query, params: Params = ()) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()
