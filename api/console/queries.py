"""The console's reads: the queue, the task list, the member card and the readings around an alert.

Each takes `visible_to` (a care manager id; None for an admin) where a list could hold other care
managers' members, so that a page never shows what the API would refuse.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from vigil.storage.rows import fetch_all, fetch_one

# A queue longer than this is not read by a person; the page says how many are not shown.
QUEUE_LIMIT = 300
# Readings charted around an alert (a wearable reporting every second gives 3 600 an hour).
CHART_READINGS_LIMIT = 5000

# Sorted by severity, then the longest waiting first. The next step as `alerts.queries` computes it: the
# pending step falling due first, held until a snooze ends.
_QUEUE = """
SELECT a.id::text AS id, a.type, a.severity, a.status, a.member_id, m.name AS member_name, a.device_id,
       d.location, a.raised_at, a.triggered_at, a.assigned_to, cm.name AS assigned_name, a.snoozed_until,
       n.recipient AS next_step_to, GREATEST(n.due_at, a.snoozed_until) AS next_step_due_at,
       count(*) OVER () AS total
FROM alerts a
LEFT JOIN members m ON m.id = a.member_id
LEFT JOIN devices d ON d.device_id = a.device_id
LEFT JOIN care_managers cm ON cm.id = a.assigned_to
LEFT JOIN LATERAL (
    SELECT s.recipient, s.due_at FROM alert_steps s
    WHERE s.alert_id = a.id AND s.state = 'pending' ORDER BY s.due_at, s.step LIMIT 1
) n ON TRUE
WHERE a.status <> 'resolved' AND (%(visible_to)s::text IS NULL OR m.care_manager_id = %(visible_to)s)
ORDER BY array_position(ARRAY['critical', 'high', 'medium', 'low'], a.severity), a.raised_at, a.id
LIMIT %(limit)s
"""
_TASKS = """
SELECT t.id, t.kind, t.alert_id::text AS alert_id, a.type AS alert_type, t.claim_id::text AS claim_id,
       t.member_id, m.name AS member_name, m.phone AS member_phone, t.due_at, t.reason
FROM tasks t
LEFT JOIN members m ON m.id = t.member_id
LEFT JOIN alerts a ON a.id = t.alert_id
WHERE t.status = 'open' AND (%(visible_to)s::text IS NULL OR m.care_manager_id = %(visible_to)s)
ORDER BY t.due_at, t.id
LIMIT %(limit)s
"""
_MEMBER = """
SELECT id, name, birth_date, phone, email, address, timezone, care_manager_id, emergency_contacts, consent,
       care_plan, quiet_hours, contact_by_call
FROM members WHERE id = %s
"""
# Last contact is the last message heard (device_liveness); battery the latest `battery` reading.
_DEVICES = """
SELECT d.device_id, d.kind, d.location, d.enabled, d.report_interval_s, l.last_message_at,
       b.value AS battery, b.ts AS battery_at
FROM devices d
LEFT JOIN device_liveness l ON l.device_id = d.device_id
LEFT JOIN LATERAL (
    SELECT r.value, r.ts FROM readings r WHERE r.device_id = d.device_id AND r.metric = 'battery'
    ORDER BY r.ts DESC LIMIT 1
) b ON TRUE
WHERE d.member_id = %s
ORDER BY d.kind DESC, d.device_id
"""


async def queue(conn: AsyncConnection, visible_to: str | None) -> tuple[list[dict[str, Any]], int]:
    """Unresolved alerts, most severe and longest waiting first, and how many there are in all."""
    rows = await fetch_all(conn, _QUEUE, {"visible_to": visible_to, "limit": QUEUE_LIMIT})
    return rows, (rows[0]["total"] if rows else 0)


async def open_tasks(conn: AsyncConnection, visible_to: str | None) -> list[dict[str, Any]]:
    """Open call, check-in and claim follow-up tasks, soonest due first."""
    return await fetch_all(conn, _TASKS, {"visible_to": visible_to, "limit": QUEUE_LIMIT})


async def alert_place(conn: AsyncConnection, alert_id: str) -> dict[str, Any] | None:
    """Who and where an alert is about: member name and timezone, device kind and room."""
    return await fetch_one(
        conn,
        "SELECT m.name AS member_name, m.timezone AS member_timezone, d.kind AS device_kind, d.location "
        "FROM alerts a LEFT JOIN members m ON m.id = a.member_id LEFT JOIN devices d ON d.device_id = a.device_id "
        "WHERE a.id = %s",
        (alert_id,),
    )


async def member(conn: AsyncConnection, member_id: str) -> dict[str, Any] | None:
    return await fetch_one(conn, _MEMBER, (member_id,))


async def devices(conn: AsyncConnection, member_id: str) -> list[dict[str, Any]]:
    """The member's devices with their last contact and battery."""
    return await fetch_all(conn, _DEVICES, (member_id,))


async def readings(
    conn: AsyncConnection, device_id: str, metric: str, start: datetime, end: datetime
) -> list[tuple[datetime, float]]:
    """One metric of one device between `start` and `end`, oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT ts, value FROM readings WHERE device_id = %s AND metric = %s AND ts BETWEEN %s AND %s "
        "ORDER BY ts LIMIT %s",
        (device_id, metric, start, end, CHART_READINGS_LIMIT),
    )
    return [(r["ts"], r["value"]) for r in rows]


async def steps(conn: AsyncConnection, alert_id: str) -> list[dict[str, Any]]:
    """The alert's ladder, in step order."""
    return await fetch_all(
        conn,
        "SELECT step, recipient, kind, due_at, state, note, done_at FROM alert_steps WHERE alert_id = %s "
        "ORDER BY step",
        (alert_id,),
    )


async def care_managers(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Everyone an alert may be assigned to."""
    return await fetch_all(conn, "SELECT id, name FROM care_managers ORDER BY name, id LIMIT 1000")


async def viewer(conn: AsyncConnection, care_manager_id: str | None) -> dict[str, Any] | None:
    """The signed-in care manager's name and time zone (None for an admin, or one not registered)."""
    if care_manager_id is None:
        return None
    return await fetch_one(conn, "SELECT name, timezone FROM care_managers WHERE id = %s", (care_manager_id,))


async def alert_owner(conn: AsyncConnection, alert_id: str) -> tuple[bool, str | None]:
    """(whether the alert exists, its member's care manager), for deciding who may hear of it."""
    row = await fetch_one(
        conn,
        "SELECT m.care_manager_id FROM alerts a LEFT JOIN members m ON m.id = a.member_id WHERE a.id = %s",
        (alert_id,),
    )
    return (row is not None, row["care_manager_id"] if row else None)
