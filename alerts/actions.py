"""Applying what people do to an alert (acknowledge, resolve, escalate...) to its row and its ladder.

`vigil.alerting.lifecycle.decide` says what a command means; this writes it in the caller's
transaction: the alert row (locked first, so two people acting at once are ordered), its history,
the ladder's pending steps, and the notifications that wake the console and the scheduler.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb

from alerts.queries import get_alert
from alerts.reply_tokens import find_reply_alert, find_reply_alerts
from alerts.tasks import complete_call_tasks
from vigil.alerting.ladder import DEFAULT_LADDER, Ladder, Step, ladder_for
from vigil.alerting.lifecycle import ActionRefused, AlertState, Change, Command, ConfirmOk, LogCall, decide
from vigil.channels import ALERTS_CHANNEL, LADDER_CHANNEL
from vigil.storage.rows import fetch_all, fetch_one

# What the console and the live queue listen to, and what the scheduler listens to.

_LOCK = """
SELECT status, severity, acknowledged_at, assigned_to, snoozed_until, raised_at
FROM alerts WHERE id = %s FOR UPDATE
"""


class UnknownAlert(LookupError):
    """No alert has the id acted on."""


class UnknownReplyToken(LookupError):
    """A reply link whose token names no alert."""


class ReplyLinkExpired(ActionRefused):
    """A reply link whose alert is resolved already; `alert` is what the link names, as it is now."""

    def __init__(self, message: str, alert: dict[str, Any]) -> None:
        super().__init__(message)
        self.alert = alert


@dataclass(frozen=True, slots=True)
class CallDetails:
    """What a logged call adds to its history entry beyond the lifecycle's: whether it reached the person."""

    reached: bool | None = None


async def act(
    conn: AsyncConnection,
    alert_id: str | uuid.UUID,
    command: Command,
    now: datetime,
    *,
    ladder: Ladder = DEFAULT_LADDER,
    call: CallDetails | None = None,
) -> dict[str, Any]:
    """Apply `command` to the alert in one transaction; the updated alert (as `alerts.queries.get_alert`).

    Raises `ActionRefused` (nothing changed) or `UnknownAlert`. `ladder` is the configured one
    (`settings.ladder`), needed when an escalation has no pending step to bring forward.
    """
    alert_id = str(alert_id)
    async with conn.transaction():
        row = await fetch_one(conn, _LOCK, (alert_id,))
        if row is None:
            raise UnknownAlert(f"no alert has id {alert_id!r}")
        state = AlertState(
            status=row["status"],
            severity=row["severity"],
            acknowledged_at=row["acknowledged_at"],
            assigned_to=row["assigned_to"],
            snoozed_until=row["snoozed_until"],
        )
        change = decide(state, command, now)
        history = dict(change.history)
        if isinstance(command, LogCall):
            if call is not None and call.reached is not None:
                history["reached"] = call.reached
            completed = await complete_call_tasks(conn, alert_id, by=command.by, note=command.outcome_text, now=now)
            if completed:
                history["tasks_done"] = completed
        await _write(conn, alert_id, change, history, now)
        stopped = change.stops_ladder and await _stop_steps(conn, alert_id, _why_stopped(history))
        if change.escalate_now:
            await _bring_next_step_forward(conn, alert_id, row["severity"], ladder, now)
        # The scheduler re-reads the alert's steps: stopped, brought forward, or held by a snooze.
        if stopped or change.escalate_now or "snoozed_until" in change.updates:
            await conn.execute("SELECT pg_notify(%s, %s)", (LADDER_CHANNEL, alert_id))
        await conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, alert_id))
        updated = await get_alert(conn, alert_id)
    if updated is None:  # the row was locked and is never deleted
        raise UnknownAlert(f"no alert has id {alert_id!r}")
    return updated


async def resolve_by_reply_token(conn: AsyncConnection, token: str, now: datetime) -> dict[str, Any]:
    """The member's "I'm OK": resolve the token's alerts as `member_ok`, by "member"; the first one back.

    Raises `UnknownReplyToken`, or `ReplyLinkExpired` when every one is resolved already.
    """
    alerts = await find_reply_alerts(conn, token)
    if not alerts:
        raise UnknownReplyToken("this link is not known")
    answered: list[dict[str, Any]] = []
    refusal: ActionRefused | None = None
    # One tap answers every alert its message listed (grouping); those resolved meanwhile are passed over.
    for alert in alerts:
        try:
            answered.append(await act(conn, alert["id"], ConfirmOk(), now))
        except ActionRefused as e:
            refusal = refusal or e
    if not answered:
        # Resolved, by someone else or by an earlier tap: the link has expired.
        raise ReplyLinkExpired(str(refusal), await find_reply_alert(conn, token) or alerts[0]) from refusal
    return answered[0]


async def _write(conn: AsyncConnection, alert_id: str, change: Change, history: dict[str, Any], now: datetime) -> None:
    assignments = [
        sql.SQL("status = %(status)s"),
        sql.SQL("updated_at = %(now)s"),
        sql.SQL("history = history || %(history)s"),
    ]
    params: dict[str, Any] = {"status": change.status, "now": now, "history": Jsonb([history]), "id": alert_id}
    for n, (column, value) in enumerate(sorted(change.updates.items())):
        assignments.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(f"u{n}")))
        params[f"u{n}"] = value
    query = sql.SQL("UPDATE alerts SET {} WHERE id = %(id)s").format(sql.SQL(", ").join(assignments))
    await conn.execute(query, params)


def _why_stopped(history: dict[str, Any]) -> str:
    """The note on a step stopped by an action: `acknowledged by care_manager:cm-1`."""
    outcome = f" ({history['outcome']})" if history.get("outcome") else ""
    return f"{history.get('action', 'stopped')}{outcome} by {history.get('by', 'someone')}"


async def _stop_steps(conn: AsyncConnection, alert_id: str, note: str) -> bool:
    """Stop every pending step of the alert; whether there was one."""
    cur = await conn.execute(
        "UPDATE alert_steps SET state = 'stopped', note = %s WHERE alert_id = %s AND state = 'pending'",
        (note, alert_id),
    )
    return cur.rowcount > 0


async def _bring_next_step_forward(
    conn: AsyncConnection, alert_id: str, severity: str, ladder: Ladder, now: datetime
) -> None:
    """Make the ladder's next step fall due now.

    The next pending step is brought forward; with none pending (an acknowledgement stopped them, or
    the ladder ran out), the ladder restarts after the last recipient told, its later steps keeping
    their spacing; when everyone on the ladder has been told, the last recipient is told again.
    """
    steps = await fetch_all(
        conn,
        "SELECT step, recipient, state, due_at FROM alert_steps WHERE alert_id = %s ORDER BY step FOR UPDATE",
        (alert_id,),
    )
    pending = sorted((s for s in steps if s["state"] == "pending"), key=lambda s: (s["due_at"], s["step"]))
    if pending:
        await conn.execute(
            "UPDATE alert_steps SET due_at = LEAST(due_at, %s) WHERE alert_id = %s AND step = %s",
            (now, alert_id, pending[0]["step"]),
        )
        return
    planned = ladder_for(severity, ladder)
    told = [s["recipient"] for s in steps if s["state"] == "done"]
    rest = _after_last_told(planned, told)
    number = max((s["step"] for s in steps), default=0) + 1
    if rest:
        first = rest[0].after_s
        rows = [
            (alert_id, number + i, step.to, "ladder", now + timedelta(seconds=step.after_s - first))
            for i, step in enumerate(rest)
        ]
    else:
        last = told[-1] if told else (planned[-1].to if planned else "care_manager")
        rows = [(alert_id, number, last, "repeat", now)]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO alert_steps (alert_id, step, recipient, kind, due_at) VALUES (%s, %s, %s, %s, %s)", rows
        )


def _after_last_told(planned: tuple[Step, ...], told: list[str]) -> tuple[Step, ...]:
    """The ladder's steps after the furthest one whose recipient was told."""
    reached = max((i for i, step in enumerate(planned) if step.to in told), default=-1)
    return planned[reached + 1 :]
