"""SQL for the care managers' tasks: calls to members who do not use apps, and next-day check-ins.

A task belongs to a member, so it is the member's current care manager who sees it, even when the
member changed care manager after the task was made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from vigil.storage.rows import fetch_all, fetch_one

_TASK_COLUMNS = """
t.id, t.kind, t.status, t.alert_id::text AS alert_id, t.claim_id::text AS claim_id, t.step, t.member_id,
m.name AS member_name,
m.care_manager_id, t.due_at, t.reason, t.created_at, t.done_at, t.done_by, t.note
"""
_FROM = " FROM tasks t LEFT JOIN members m ON m.id = t.member_id "


class TaskClosed(ValueError):
    """The task is done or cancelled already; the message says which."""


async def list_tasks(
    conn: AsyncConnection,
    *,
    status: str,
    kind: str | None = None,
    member_id: str | None = None,
    visible_to: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Tasks soonest due first; `visible_to` (a care manager id) keeps only that one's members'."""
    where: list[sql.Composable] = [sql.SQL("t.status = %s")]
    params: list[Any] = [status]
    for clause, value in (
        ("t.kind = %s", kind),
        ("t.member_id = %s", member_id),
        ("m.care_manager_id = %s", visible_to),
    ):
        if value is not None:
            where.append(sql.SQL(clause))
            params.append(value)
    query = sql.SQL("SELECT " + _TASK_COLUMNS + _FROM + "WHERE {} ORDER BY t.due_at, t.id LIMIT %s")
    return await fetch_all(conn, query.format(sql.SQL(" AND ").join(where)), [*params, limit])


async def get_task(conn: AsyncConnection, task_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    """One task with its member's care manager (`care_manager_id`) for the access check."""
    query = "SELECT " + _TASK_COLUMNS + _FROM + "WHERE t.id = %s"
    return await fetch_one(conn, query + (" FOR UPDATE OF t" if lock else ""), (task_id,))


async def complete_task(
    conn: AsyncConnection, task_id: int, *, by: str, note: str | None, now: datetime
) -> dict[str, Any]:
    """Mark an open task done by `by`; `TaskClosed` when it is not open. Run in a transaction (it locks the row)."""
    task = await get_task(conn, task_id, lock=True)
    if task is None:
        raise LookupError(f"no task has id {task_id}")
    if task["status"] != "open":
        raise TaskClosed(f"task {task_id} is {task['status']} already")
    await conn.execute(
        "UPDATE tasks SET status = 'done', done_at = %s, done_by = %s, note = %s WHERE id = %s",
        (now, by, note, task_id),
    )
    return {**task, "status": "done", "done_at": now, "done_by": by, "note": note}


async def complete_call_tasks(
    conn: AsyncConnection, alert_id: str, *, by: str, note: str | None, now: datetime
) -> list[int]:
    """A logged call completes every open call task of the alert (one per step that would have messaged
    the member): the ids it completed."""
    rows = await fetch_all(
        conn,
        "UPDATE tasks SET status = 'done', done_at = %s, done_by = %s, note = %s "
        "WHERE alert_id = %s AND kind = 'call' AND status = 'open' RETURNING id",
        (now, by, note, alert_id),
    )
    return sorted(r["id"] for r in rows)
