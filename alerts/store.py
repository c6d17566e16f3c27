"""SQL for the alerts table: applying alert events idempotently (the API's reads are in `alerts.queries`).

An episode (one `alert_id`) lands in the row of that id, or, when another episode of the same
member/device/type was already open, in that open row, whose history then records the episode.
Every statement is safe to repeat, so a redelivered event changes nothing.

A raised alert gets its escalation ladder (`alert_steps`) in the same transaction, so no alert is
ever stored without the steps that tell people about it; a severity that rises brings the new
ladder's steps forward, and a condition that clears stops the steps still waiting. Every change
notifies `vigil_alerts` (the console) and, when steps changed, `vigil_ladder` (the scheduler);
PostgreSQL delivers both at commit, so a listener never sees a change that was rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts.event_decoding import episode_marker, history_entry
from vigil.alerting.ladder import DEFAULT_LADDER, Ladder, PlannedStep, plan_ladder, replan
from vigil.alerting.lifecycle import stops_ladder
from vigil.channels import ALERTS_CHANNEL, LADDER_CHANNEL
from vigil.events import AlertChanged
from vigil.storage.rows import fetch_all, fetch_one
from vigil.telemetry import from_ms
from vigil.timefmt import utc_text

# NOT EXISTS: an episode once absorbed by another alert never gets a row of its own, even when its
# event is replayed after that alert was resolved.
_RAISE = """
INSERT INTO alerts (id, type, severity, status, member_id, device_id, triggered_at,
                    raised_at, updated_at, evidence, history, opens_incident)
SELECT %(id)s::uuid, %(type)s, %(severity)s, 'open', %(member_id)s, %(device_id)s, %(triggered_at)s,
       %(now)s, %(now)s, %(evidence)s, %(history)s, %(opens_incident)s
WHERE NOT EXISTS (SELECT 1 FROM alerts WHERE device_id = %(device_id)s AND type = %(type)s
                  AND member_id = %(member_id)s AND history @> %(episode)s)
ON CONFLICT DO NOTHING
"""
# The insert found a conflict: either this episode is stored already (redelivery), or another
# episode is open for the same member/device/type (the partial unique index), which absorbs it.
_RETRIGGER = """
UPDATE alerts SET evidence = %(evidence)s, updated_at = %(now)s, history = history || %(history)s
WHERE member_id = %(member_id)s AND device_id = %(device_id)s AND type = %(type)s
  AND status <> 'resolved'
  AND NOT history @> %(episode)s
  AND NOT EXISTS (SELECT 1 FROM alerts WHERE id = %(id)s)
RETURNING id::text
"""
# The open row an episode lives in: its own, or the one that absorbed it.
_OPEN_EPISODE = """
WHERE status <> 'resolved'
  AND (id = %(id)s OR (member_id = %(member_id)s AND device_id = %(device_id)s AND type = %(type)s
                       AND history @> %(episode)s))
"""
# An update lands in the open row its episode lives in, read first (and locked) so that what changes in it
# can be recorded in its history.
_OPEN_ROW = (
    "SELECT id::text AS id, severity, status, triggered_at, raised_at FROM alerts" + _OPEN_EPISODE + "FOR UPDATE"
)
# A rule may raise the severity of an open alert (low_spo2 high -> critical), and readings that arrived
# late may show its condition was met earlier than the alert says: `triggered_at` only ever moves back
# (the alert keeps its id). The history entries for what changed are worked out from the row read first.
_UPDATE = """
UPDATE alerts SET evidence = %(evidence)s, updated_at = %(now)s, severity = %(severity)s,
                  triggered_at = LEAST(triggered_at, %(triggered_at)s), history = history || %(history)s
WHERE id = %(row_id)s::uuid
"""
_CLEAR = (
    """
UPDATE alerts SET status = 'resolved', cleared_at = %(cleared_at)s, resolved_at = %(now)s,
                  updated_at = %(now)s, history = history || %(history)s
"""
    + _OPEN_EPISODE
    + "RETURNING id::text"
)
_INSERT_STEP = """
INSERT INTO alert_steps (alert_id, step, recipient, kind, due_at)
VALUES (%(alert_id)s, %(step)s, %(recipient)s, %(kind)s, %(due_at)s)
ON CONFLICT DO NOTHING
"""
_STEPS = "SELECT step, recipient, kind, due_at, state FROM alert_steps WHERE alert_id = %s ORDER BY step FOR UPDATE"
_MOVE_STEP = "UPDATE alert_steps SET due_at = %s WHERE alert_id = %s AND step = %s AND state = 'pending'"
# The care manager still sees a cleared alert in the console; only the messages not yet sent stop.
_STOP_ON_CLEAR = """
UPDATE alert_steps SET state = 'stopped', note = 'the condition cleared', done_at = %s
WHERE alert_id = %s AND state = 'pending'
"""


async def apply_alert_change(
    conn: AsyncConnection, event: AlertChanged, now: datetime, *, ladder: Ladder = DEFAULT_LADDER
) -> str:
    """Apply one event; returns what it did: raised, retriggered, duplicate, updated, cleared, ignored.

    `ladder` is the configured escalation ladder (`settings.ladder`), planned for a new alert.
    """
    params: dict[str, Any] = {
        "id": event.alert_id,
        "type": event.type,
        "severity": event.severity,
        "member_id": event.member_id,
        "device_id": event.device_id,
        "triggered_at": from_ms(event.triggered_at_ms),
        "now": now,
        "evidence": Jsonb(event.evidence),
        "episode": Jsonb(episode_marker(event.alert_id)),
        "opens_incident": event.opens_incident,
    }
    async with conn.cursor() as cur:
        if event.change == "raised":
            params["history"] = Jsonb([history_entry("raised", now)])
            await cur.execute(_RAISE, params)
            if cur.rowcount == 1:
                await _insert_steps(conn, event.alert_id, plan_ladder(event.severity, now, ladder))
                await _notify(conn, event.alert_id, ladder_changed=True)
                return "raised"
            triggered = utc_text(params["triggered_at"])
            entry = history_entry("retriggered", now, episode=event.alert_id, triggered_at=triggered)
            params["history"] = Jsonb([entry])
            await cur.execute(_RETRIGGER, params)
            row = await cur.fetchone() if cur.rowcount == 1 else None
            if row is None:
                return "duplicate"
            await _notify(conn, row[0])
            return "retriggered"
        if event.change == "updated":
            row = await fetch_one(conn, _OPEN_ROW, params)
            if row is None:
                return "ignored"
            params["row_id"] = row["id"]
            params["history"] = Jsonb(_update_history(row, event, params["triggered_at"], now))
            await cur.execute(_UPDATE, params)
            moved = False
            if row["severity"] != event.severity and not stops_ladder(row["status"]):
                moved = await _replan(conn, row["id"], event.severity, row["raised_at"], ladder)
            await _notify(conn, row["id"], ladder_changed=moved)
            return "updated"
        cleared_at = from_ms(event.cleared_at_ms if event.cleared_at_ms is not None else event.detected_at_ms)
        params["cleared_at"] = cleared_at
        params["history"] = Jsonb([history_entry("condition_cleared", now, cleared_at=utc_text(cleared_at))])
        await cur.execute(_CLEAR, params)
        row = await cur.fetchone() if cur.rowcount else None
        if row is None:
            return "ignored"
        await cur.execute(_STOP_ON_CLEAR, (now, row[0]))
        await _notify(conn, row[0], ladder_changed=cur.rowcount > 0)
        return "cleared"


async def _insert_steps(conn: AsyncConnection, alert_id: str, steps: Sequence[PlannedStep]) -> None:
    rows = [{"alert_id": alert_id, "step": s.step, "recipient": s.recipient, "kind": s.kind, "due_at": s.due_at}
            for s in steps]
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(_INSERT_STEP, rows)


async def _replan(conn: AsyncConnection, alert_id: str, severity: str, raised_at: datetime, ladder: Ladder) -> bool:
    """Bring the ladder of the risen severity to bear on an unanswered alert; whether any step changed."""
    rows = await fetch_all(conn, _STEPS, (alert_id,))
    existing = [PlannedStep(step=r["step"], recipient=r["recipient"], kind=r["kind"], due_at=r["due_at"])
                for r in rows]
    done = {r["recipient"] for r in rows if r["state"] == "done"}
    added, moved = replan(severity, raised_at, ladder, existing, done)
    await _insert_steps(conn, alert_id, added)
    async with conn.cursor() as cur:
        for step in moved:
            await cur.execute(_MOVE_STEP, (step.due_at, alert_id, step.step))
    return bool(added or moved)


async def _notify(conn: AsyncConnection, alert_id: str, *, ladder_changed: bool = False) -> None:
    """Tell the console the alert changed, and the scheduler when its steps did (both at commit)."""
    await conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, alert_id))
    if ladder_changed:
        await conn.execute("SELECT pg_notify(%s, %s)", (LADDER_CHANNEL, alert_id))


def _update_history(row: dict[str, Any], event: AlertChanged, triggered_at: datetime, now: datetime) -> list:
    """The history entries an update writes into the open row `row`: what it changes there, if anything."""
    entries = []
    if row["severity"] != event.severity:
        entries.append(history_entry("severity_changed", now, severity=event.severity))
    if triggered_at < row["triggered_at"]:
        entries.append(history_entry("triggered_at_corrected", now, old=utc_text(row["triggered_at"]),
                                     new=utc_text(triggered_at)))
    return entries


async def apply_alert_changes(
    conn: AsyncConnection, events: Iterable[AlertChanged], now: datetime, *, ladder: Ladder = DEFAULT_LADDER
) -> list[str]:
    """Apply a batch in one transaction, committed when this returns; outcomes in event order."""
    async with conn.transaction():
        return [await apply_alert_change(conn, event, now, ladder=ladder) for event in events]
