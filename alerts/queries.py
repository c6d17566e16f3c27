"""The API's reads of alerts: the row with its handling (who acknowledged, the outcome, the assignee,
a snooze) and the ladder's next pending step, for `GET /alerts` and after every action."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql

from vigil.storage.rows import fetch_all, fetch_one

# The next step is the pending one falling due first; a snooze holds it until the snooze ends (the
# step policy defers it then), so that is when it really falls due. GREATEST ignores a NULL snooze.
_COLUMNS = """
a.id::text AS id, a.type, a.severity, a.status, a.member_id, a.device_id, a.triggered_at, a.raised_at,
a.updated_at, a.cleared_at, a.resolved_at, a.evidence, a.history, a.acknowledged_at, a.acknowledged_by,
a.outcome, a.assigned_to, a.snoozed_until, m.care_manager_id,
n.step AS next_step_number, n.recipient AS next_step_to, GREATEST(n.due_at, a.snoozed_until) AS next_step_due_at
"""
_FROM = """
FROM alerts a
LEFT JOIN members m ON m.id = a.member_id
LEFT JOIN LATERAL (
    SELECT s.step, s.recipient, s.due_at FROM alert_steps s
    WHERE s.alert_id = a.id AND s.state = 'pending' AND a.status <> 'resolved'
    ORDER BY s.due_at, s.step LIMIT 1
) n ON TRUE
"""


async def get_alert(conn: AsyncConnection, alert_id: uuid.UUID | str) -> dict[str, Any] | None:
    """One alert as `api.schemas.Alert` reads it, with its member's care manager for the access check."""
    row = await fetch_one(conn, "SELECT " + _COLUMNS + _FROM + "WHERE a.id = %s", (alert_id,))
    return _with_next_step(row) if row else None


async def list_alerts(
    conn: AsyncConnection,
    *,
    member_id: str | None = None,
    device_id: str | None = None,
    status: str | None = None,
    alert_type: str | None = None,
    since: datetime | None = None,
    visible_to: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Alerts newest raised first; `visible_to` (a care manager id) keeps only that one's members'."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    for clause, value in (
        ("a.member_id = %s", member_id),
        ("a.device_id = %s", device_id),
        ("a.status = %s", status),
        ("a.type = %s", alert_type),
        ("a.raised_at >= %s", since),
        ("m.care_manager_id = %s", visible_to),
    ):
        if value is not None:
            where.append(sql.SQL(clause))
            params.append(value)
    query = sql.SQL("SELECT " + _COLUMNS + _FROM + "WHERE {} ORDER BY a.raised_at DESC, a.id LIMIT %s")
    rows = await fetch_all(conn, query.format(sql.SQL(" AND ").join(where)), [*params, limit])
    return [_with_next_step(row) for row in rows]


def _with_next_step(row: dict[str, Any]) -> dict[str, Any]:
    number, to, due_at = row.pop("next_step_number"), row.pop("next_step_to"), row.pop("next_step_due_at")
    row["next_step"] = None if number is None else {"step": number, "to": to, "due_at": due_at}
    return row
