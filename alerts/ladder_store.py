"""Running a ladder step, and the follow-ups of resolved alerts, against the database (synchronous psycopg).

A step runs in one transaction: it locks its member (so that two steps of one member's alerts, due
at the same moment, are grouped instead of racing), the alert and the step row; a step that is no
longer pending, or not yet due, is left alone. `vigil.alerting.step_policy.decide_step` says what
to do; this writes it: outbox rows, a call task, the alert's escalation, the step's state and the
next re-notification. The sender (`alerts.outbox`) sends the rows after the commit, so a step is
either wholly done or not at all, and a step run twice finds itself done.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.reply_tokens import issue_reply_token_sync, reply_url
from vigil.alerting.facts import AlertFacts, CareManagerFacts, Contact, MemberFacts
from vigil.alerting.followups import check_in_due, tip_due, wants_tip
from vigil.alerting.ladder import PlannedStep, next_repeat
from vigil.alerting.lifecycle import AlertState, LadderEscalated, decide, stops_ladder
from vigil.alerting.messages import Message, compose, compose_tip, wording
from vigil.alerting.quiet_hours import QuietHours, parse_quiet_hours, quiet_until
from vigil.alerting.step_policy import Defer, Delivery, Send, Stop, channel_of, decide_step
from vigil.alerting.tips import Tip, load_tips
from vigil.channels import ALERTS_CHANNEL, LADDER_CHANNEL, OUTREACH_CHANNEL

log = logging.getLogger(__name__)

FOLLOWUPS_BATCH = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class OutreachConfig:
    """The settings a step needs: link base, grouping window, re-notification interval."""

    public_url: str
    group_interval_s: int
    repeat_s: int


# `member_id` never changes, so it is read before any lock; the member lock comes first.
_MEMBER_OF = "SELECT member_id FROM alerts WHERE id = %s"
# Per member, not per row: the member may have no row (alerts keep their member id regardless).
_LOCK_MEMBER = "SELECT pg_advisory_xact_lock(hashtextextended('vigil-outreach-member:' || %s, 0))"
_ALERT = """
SELECT a.id::text AS id, a.type, a.severity, a.status, a.device_id, d.location, a.triggered_at, a.raised_at,
       a.evidence, a.acknowledged_at, a.snoozed_until, a.opens_incident, a.member_id, a.outcome, a.resolved_at
FROM alerts a LEFT JOIN devices d ON d.device_id = a.device_id
WHERE a.id = %s
FOR UPDATE OF a
"""
_STEP = "SELECT step, recipient, kind, due_at, state FROM alert_steps WHERE alert_id = %s AND step = %s FOR UPDATE\n"
_MEMBER = """
SELECT m.id, m.name, m.timezone, m.birth_date, m.phone, m.email, m.address, m.consent, m.contact_by_call,
       m.quiet_hours, m.outreach_urls, m.emergency_contacts, m.care_manager_id,
       c.name AS cm_name, c.timezone AS cm_timezone, c.phone AS cm_phone, c.email AS cm_email,
       c.outreach_urls AS cm_urls
FROM members m LEFT JOIN care_managers c ON c.id = m.care_manager_id
WHERE m.id = %s
"""
# The last message of another alert of this member to the same kind of recipient, for grouping
# (CONTRACT §5: further alerts within the group interval after a message join the next message).
_LAST_SENT = """
SELECT max(coalesce(o.sent_at, o.created_at))
FROM outreach o JOIN alerts a ON a.id = o.alert_id
WHERE a.member_id = %(member_id)s AND o.alert_id <> %(alert_id)s::uuid AND o.to_role = %(to_role)s
  AND o.purpose <> 'tip' AND o.status IN ('pending', 'sending', 'sent')
"""
# Other alerts of this member whose step to the same recipient is due: they ride in this message.
_GROUPABLE = """
SELECT s.alert_id::text AS alert_id, s.step
FROM alert_steps s JOIN alerts a ON a.id = s.alert_id
WHERE a.member_id = %(member_id)s AND s.alert_id <> %(alert_id)s::uuid AND s.recipient = %(recipient)s
  AND s.state = 'pending' AND s.due_at <= %(now)s
ORDER BY s.due_at, s.alert_id
"""
# Who earlier steps of the alert reached (or are reaching): the `told` of later messages.
_TOLD = """
SELECT o.to_role, o.recipient_name FROM outreach o
WHERE o.alert_id = %s AND o.step < %s AND o.purpose <> 'tip' AND o.status IN ('pending', 'sending', 'sent')
GROUP BY o.to_role, o.recipient_name
ORDER BY min(o.step), o.recipient_name
"""
_INSERT_OUTREACH = """
INSERT INTO outreach (alert_id, step, purpose, to_role, recipient_key, recipient_name, channel, target,
                      target_digest, title, body, status, reason, next_attempt_at, grouped_into)
VALUES (%(alert_id)s, %(step)s, %(purpose)s, %(to_role)s, %(recipient_key)s, %(recipient_name)s, %(channel)s,
        %(target)s, %(target_digest)s, %(title)s, %(body)s, %(status)s, %(reason)s,
        CASE WHEN %(status)s::text = 'pending' THEN coalesce(%(not_before)s::timestamptz, clock_timestamp()) END,
        %(grouped_into)s)
ON CONFLICT (alert_id, step, recipient_key, target_digest) DO UPDATE
SET status = EXCLUDED.status, title = EXCLUDED.title, body = EXCLUDED.body, reason = EXCLUDED.reason,
    next_attempt_at = EXCLUDED.next_attempt_at, grouped_into = EXCLUDED.grouped_into, updated_at = clock_timestamp()
WHERE outreach.status = 'held'
RETURNING id
"""
_OUTREACH_ID = "SELECT id FROM outreach WHERE alert_id = %s AND step = %s AND recipient_key = %s AND target_digest = %s"
_HOLD = """
INSERT INTO outreach (alert_id, step, purpose, to_role, recipient_key, recipient_name, channel, target,
                      target_digest, status, reason)
VALUES (%(alert_id)s, %(step)s, %(purpose)s, 'member', %(recipient_key)s, %(recipient_name)s, %(channel)s,
        %(target)s, %(target_digest)s, 'held', %(reason)s)
ON CONFLICT (alert_id, step, recipient_key, target_digest) DO UPDATE
SET reason = EXCLUDED.reason, updated_at = clock_timestamp()
WHERE outreach.status = 'held'
"""
_STEP_DONE = "UPDATE alert_steps SET state = %s, note = %s, done_at = %s WHERE alert_id = %s AND step = %s"
_STEP_DEFER = "UPDATE alert_steps SET due_at = %s, note = %s WHERE alert_id = %s AND step = %s"
_LAST_STEP = "SELECT max(step) FROM alert_steps WHERE alert_id = %s"
_INSERT_STEP = """
INSERT INTO alert_steps (alert_id, step, recipient, kind, due_at) VALUES (%s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_ESCALATE = "UPDATE alerts SET status = %s, updated_at = %s, history = history || %s WHERE id = %s"
_TASK = """
INSERT INTO tasks (kind, alert_id, step, member_id, care_manager_id, due_at, reason)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
"""
_PENDING = "SELECT alert_id::text, step, due_at FROM alert_steps WHERE state = 'pending'"
# A message held for quiet hours whose step was then stopped (an acknowledgement, an "I'm OK") will
# never be sent: the log says so instead of "held" for ever.
_SETTLE_HELD = """
UPDATE outreach o SET status = 'skipped', updated_at = clock_timestamp(),
       reason = 'not sent: ' || coalesce(s.note, 'the ladder stopped')
FROM alert_steps s
WHERE o.status = 'held' AND s.alert_id = o.alert_id AND s.step = o.step AND s.state = 'stopped'
RETURNING o.alert_id::text
"""
_FOLLOWUPS_DUE = """
SELECT a.id::text AS id FROM alerts a
WHERE a.followups_at IS NULL
  AND (a.status = 'resolved'
       OR (a.type = 'fall' AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.alert_id = a.id AND t.kind = 'check_in')))
ORDER BY a.raised_at
LIMIT %s
"""


def pending_steps(conn: psycopg.Connection) -> list[tuple[str, int, datetime]]:
    """Every pending step as (alert id, step, due at): what the scheduler must have a job for."""
    return [(row[0], row[1], row[2]) for row in conn.execute(_PENDING)]


def run_step(conn: psycopg.Connection, alert_id: str, step: int, now: datetime, config: OutreachConfig) -> str:
    """Run step `step` of `alert_id` if it is pending and due; returns what happened, in a few words.

    `conn` is in autocommit mode: the step is one transaction of its own, committed here.
    """
    with conn.transaction():
        found = conn.execute(_MEMBER_OF, (alert_id,)).fetchone()
        if found is None:
            return "no such alert"
        conn.execute(_LOCK_MEMBER, (found[0],))
        alert_row = _one(conn, _ALERT, (alert_id,))
        step_row = _one(conn, _STEP, (alert_id, step))
        if alert_row is None or step_row is None or step_row["state"] != "pending":
            return "not pending"
        if step_row["due_at"] > now:
            # Moved later since this job was planned (a deferral, a snooze): whoever moved it told the
            # scheduler, which plans a job for the new time.
            return "not due"
        alert = _alert_facts(alert_row)
        planned = _planned(step_row)
        member = _member_facts(conn, alert_row["member_id"])
        to_role = _ROLE[planned.recipient]
        last = conn.execute(_LAST_SENT, {"member_id": member.id, "alert_id": alert_id, "to_role": to_role}).fetchone()
        decision = decide_step(alert=alert, step=planned, member=member, now=now, last_sent_at=last[0],
                               group_interval_s=config.group_interval_s)
        if isinstance(decision, Stop):
            conn.execute(_STEP_DONE, ("stopped", decision.reason, now, alert_id, step))
            _notify(conn, ALERTS_CHANNEL, alert_id)
            return f"stopped: {decision.reason}"
        if isinstance(decision, Defer):
            _defer(conn, alert, planned, member, decision, now)
            return f"deferred to {decision.until.isoformat()}: {decision.reason}"
        # Only a message that goes out can carry other alerts; skipped deliveries are each alert's own record.
        sends = any(delivery.status == "pending" for delivery in decision.deliveries)
        riders = _riders(conn, alert, planned, member, now, config) if sends else []
        _send(conn, alert, planned, member, decision, riders, now, config)
        return "sent" + (f" with {len(riders)} grouped alert(s)" if riders else "")


def settle_held(conn: psycopg.Connection) -> int:
    """Mark held messages of stopped steps as skipped; how many."""
    with conn.transaction():
        alert_ids = [row[0] for row in conn.execute(_SETTLE_HELD)]
        for alert_id in sorted(set(alert_ids)):
            _notify(conn, ALERTS_CHANNEL, alert_id)
    return len(alert_ids)


def run_followups(conn: psycopg.Connection, now: datetime, tips: dict[str, Tip] | None = None, *,
                  tip_delay_s: int = 0) -> int:
    """Decide the follow-ups of alerts that need them (falls once raised, others once resolved); how many.

    Idempotent: tasks and tip rows have unique keys, and `followups_at` marks a resolved alert done.
    `conn` is in autocommit mode: each alert's follow-ups are a transaction of their own.
    """
    tips = load_tips() if tips is None else tips
    done = 0
    for (alert_id,) in conn.execute(_FOLLOWUPS_DUE, (FOLLOWUPS_BATCH,)).fetchall():
        with conn.transaction():
            alert_row = _one(conn, _ALERT + " SKIP LOCKED", (alert_id,))
            if alert_row is None:
                continue  # being changed right now; the next round sees it
            _follow_up(conn, alert_row, now, tips, tip_delay_s)
        done += 1
    return done


def _follow_up(conn: psycopg.Connection, row: dict[str, Any], now: datetime, tips: dict[str, Tip],
               tip_delay_s: int) -> None:
    alert = _alert_facts(row)
    member = _member_facts(conn, row["member_id"])
    resolved = row["status"] == "resolved"
    # The day after the resolution, not after whenever this runs.
    due = check_in_due(alert, member.timezone, row["resolved_at"] or now, outcome=row["outcome"])
    if due is not None:
        reason = f"Check in on {member.name} after {wording(alert.type).kind}"
        conn.execute(_TASK, ("check_in", alert.id, 0, member.id, _care_manager_id(member), due, reason))
    if not resolved:
        return
    tip = tips.get(alert.type)
    if tip is not None and wants_tip(alert, row["outcome"], member=member):
        _insert_tip(conn, alert, member, tip, tip_due(row["resolved_at"] or now, delay_s=tip_delay_s,
                                                      quiet=member.quiet_hours, tz=member.timezone))
    conn.execute("UPDATE alerts SET followups_at = %s WHERE id = %s", (now, alert.id))
    _notify(conn, ALERTS_CHANNEL, alert.id)


def _insert_tip(conn: psycopg.Connection, alert: AlertFacts, member: MemberFacts, tip: Tip,
                not_before: datetime) -> None:
    """The tip to each of the member's channels, as step 0, sent from `not_before` on."""
    message = compose_tip(alert, member, tip)
    for url in member.outreach_urls:
        delivery = Delivery(to_role="member", recipient_key=f"member:{member.id}", recipient_name=member.name,
                            target=url, channel=channel_of(url), status="pending")
        _insert_row(conn, alert.id, 0, "tip", delivery, message, grouped_into=None, not_before=not_before)
    if member.outreach_urls:
        _notify(conn, OUTREACH_CHANNEL, alert.id)


def _defer(conn: psycopg.Connection, alert: AlertFacts, planned: PlannedStep, member: MemberFacts,
           decision: Defer, now: datetime) -> None:
    conn.execute(_STEP_DEFER, (decision.until, decision.reason, alert.id, planned.step))
    quiet_end = quiet_until(member.quiet_hours, member.timezone, now)
    if planned.recipient == "member" and quiet_end is not None and decision.until == quiet_end:
        # Shown as `held` in the outreach log until the quiet hours end and the step runs.
        for url in member.outreach_urls:
            conn.execute(_HOLD, {"alert_id": alert.id, "step": planned.step, "purpose": _PURPOSE[planned.kind],
                                 "recipient_key": f"member:{member.id}", "recipient_name": member.name,
                                 "channel": channel_of(url), "target": url, "target_digest": _digest(url),
                                 "reason": decision.reason})
    _notify(conn, LADDER_CHANNEL, alert.id)
    _notify(conn, ALERTS_CHANNEL, alert.id)


@dataclass(frozen=True, slots=True)
class _Rider:
    """Another alert of the member whose step to the same recipient goes in this message."""

    alert: AlertFacts
    planned: PlannedStep
    escalates: bool


def _riders(conn: psycopg.Connection, alert: AlertFacts, planned: PlannedStep, member: MemberFacts,
            now: datetime, config: OutreachConfig) -> list[_Rider]:
    params = {"member_id": member.id, "alert_id": alert.id, "recipient": planned.recipient, "now": now}
    riders = []
    for candidate in conn.execute(_GROUPABLE, params).fetchall():
        # SKIP LOCKED: an alert being changed right now (an action, its own events) is not waited for;
        # it goes in a message of its own, and no lock is ever awaited in an order that could deadlock.
        other_row = _one(conn, _ALERT + " SKIP LOCKED", (candidate[0],))
        step_row = _one(conn, _STEP + " SKIP LOCKED", candidate)
        if other_row is None or step_row is None or step_row["state"] != "pending" or step_row["due_at"] > now:
            continue
        other, other_step = _alert_facts(other_row), _planned(step_row)
        # Its own decision, with no grouping wait: a snoozed or answered alert does not ride along.
        decision = decide_step(alert=other, step=other_step, member=member, now=now, last_sent_at=None,
                               group_interval_s=config.group_interval_s)
        if isinstance(decision, Send):
            riders.append(_Rider(other, other_step, decision.escalates))
    return riders


def _send(conn: psycopg.Connection, alert: AlertFacts, planned: PlannedStep, member: MemberFacts, decision: Send,
          riders: Sequence[_Rider], now: datetime, config: OutreachConfig) -> None:
    alerts = [alert, *(r.alert for r in riders)]
    told = conn.execute(_TOLD, (alert.id, planned.step)).fetchall()
    messages: dict[str, Message] = {}
    queued = False
    for delivery in decision.deliveries:
        if delivery.status != "pending":
            _insert_row(conn, alert.id, planned.step, _PURPOSE[planned.kind], delivery, None, grouped_into=None)
            continue
        message = messages.get(delivery.recipient_key)
        if message is None:
            message = messages[delivery.recipient_key] = _compose(conn, delivery, alerts, member, told, config)
        carrier = _insert_row(conn, alert.id, planned.step, _PURPOSE[planned.kind], delivery, message,
                              grouped_into=None)
        queued = True
        for rider in riders:
            _insert_row(conn, rider.alert.id, rider.planned.step, _PURPOSE[rider.planned.kind], delivery, message,
                        grouped_into=carrier)
    if decision.call_task:
        kinds = ", ".join(wording(a.type).kind for a in alerts)
        reason = (f"Call {member.name} on {member.phone or 'their phone (no number on file)'}: {kinds}. "
                  "They are reached by phone rather than by app.")
        conn.execute(_TASK, ("call", alert.id, planned.step, member.id, _care_manager_id(member), now, reason))
    note = f"sent to {len(messages)} recipient(s)" if messages else "nothing to send: " + _skip_reasons(decision)
    _finish(conn, alert, planned, decision.escalates, note, now, config)
    for rider in riders:
        _finish(conn, rider.alert, rider.planned, rider.escalates, f"grouped into the message for alert {alert.id}",
                now, config)
    if queued:
        _notify(conn, OUTREACH_CHANNEL, alert.id)


def _compose(conn: psycopg.Connection, delivery: Delivery, alerts: Sequence[AlertFacts], member: MemberFacts,
             told: Sequence[tuple[str, str]], config: OutreachConfig) -> Message:
    carrier = alerts[0]
    reply = console = None
    if delivery.to_role == "member":
        reply = reply_url(config.public_url, issue_reply_token_sync(conn, *(a.id for a in alerts)))
    elif delivery.to_role == "care_manager":
        console = f"{config.public_url.rstrip('/')}/alerts/{carrier.id}"
    timezone = member.care_manager.timezone if delivery.to_role == "care_manager" and member.care_manager \
        else member.timezone
    # Others told before, not the recipient itself (a re-notification follows its own earlier message).
    others = [_told_name(role, name) for role, name in told if role != delivery.to_role]
    return compose(to_role=delivery.to_role, alerts=alerts, member=member, recipient_timezone=timezone,
                   told=others, reply_url=reply, console_url=console)


def _finish(conn: psycopg.Connection, alert: AlertFacts, planned: PlannedStep, escalates: bool, note: str,
            now: datetime, config: OutreachConfig) -> None:
    """Mark the step done, escalate the alert when the step went past the member, plan the re-notification."""
    conn.execute(_STEP_DONE, ("done", note, now, alert.id, planned.step))
    status = alert.status
    if escalates:
        state = AlertState(status=alert.status, severity=alert.severity, acknowledged_at=alert.acknowledged_at,
                           snoozed_until=alert.snoozed_until)
        change = decide(state, LadderEscalated(), now)
        conn.execute(_ESCALATE, (change.status, now, Jsonb([change.history]), alert.id))
        status = change.status
    last = conn.execute(_LAST_STEP, (alert.id,)).fetchone()[0]
    if last == planned.step and not stops_ladder(status):
        repeat = next_repeat(planned, config.repeat_s)
        conn.execute(_INSERT_STEP, (alert.id, repeat.step, repeat.recipient, repeat.kind, repeat.due_at))
        _notify(conn, LADDER_CHANNEL, alert.id)
    _notify(conn, ALERTS_CHANNEL, alert.id)


def _insert_row(conn: psycopg.Connection, alert_id: str, step: int, purpose: str, delivery: Delivery,
                message: Message | None, *, grouped_into: int | None, not_before: datetime | None = None) -> int:
    params = {
        "alert_id": alert_id, "step": step, "purpose": purpose, "to_role": delivery.to_role,
        "recipient_key": delivery.recipient_key, "recipient_name": delivery.recipient_name,
        "channel": delivery.channel, "target": delivery.target, "target_digest": _digest(delivery.target),
        "title": message.title if message else "", "body": message.body if message else "",
        "status": delivery.status, "reason": delivery.reason, "grouped_into": grouped_into, "not_before": not_before,
    }
    row = conn.execute(_INSERT_OUTREACH, params).fetchone()
    if row is None:  # there already, and not held: the unique key kept it once
        row = conn.execute(_OUTREACH_ID, (alert_id, step, delivery.recipient_key, params["target_digest"])).fetchone()
    return row[0]


def _one(conn: psycopg.Connection, query: str, params: Sequence[Any]) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchone()


def _alert_facts(row: dict[str, Any]) -> AlertFacts:
    return AlertFacts(id=row["id"], type=row["type"], severity=row["severity"], status=row["status"],
                      device_id=row["device_id"], location=row["location"], triggered_at=row["triggered_at"],
                      raised_at=row["raised_at"], evidence=row["evidence"] or {},
                      acknowledged_at=row["acknowledged_at"], snoozed_until=row["snoozed_until"],
                      opens_incident=row["opens_incident"])


def _planned(row: dict[str, Any]) -> PlannedStep:
    return PlannedStep(step=row["step"], recipient=row["recipient"], kind=row["kind"], due_at=row["due_at"])


def _member_facts(conn: psycopg.Connection, member_id: str) -> MemberFacts:
    row = _one(conn, _MEMBER, (member_id,))
    if row is None:
        # Alerts keep their member id even if the member is gone: the care manager path still records it.
        return MemberFacts(id=member_id, name=member_id)
    manager = None
    if row["care_manager_id"]:
        manager = CareManagerFacts(id=row["care_manager_id"], name=row["cm_name"] or row["care_manager_id"],
                                   timezone=row["cm_timezone"] or "UTC", phone=row["cm_phone"],
                                   email=row["cm_email"], outreach_urls=tuple(row["cm_urls"] or ()))
    contacts = tuple(
        Contact(name=c.get("name") or "", phone=c.get("phone"), relation=c.get("relation"),
                outreach_url=c.get("outreach_url"))
        for c in row["emergency_contacts"] or () if isinstance(c, dict)
    )
    consent = row["consent"] if isinstance(row["consent"], dict) else {}
    return MemberFacts(id=row["id"], name=row["name"], timezone=row["timezone"] or "UTC",
                       birth_date=row["birth_date"], phone=row["phone"], email=row["email"], address=row["address"],
                       consent_outreach=consent.get("outreach") is True, contact_by_call=row["contact_by_call"],
                       quiet_hours=_quiet_hours(row["id"], row["quiet_hours"]),
                       outreach_urls=tuple(row["outreach_urls"] or ()), emergency_contacts=contacts,
                       care_manager=manager)


def _quiet_hours(member_id: str, value: object) -> QuietHours | None:
    if not value:
        return None
    try:
        return parse_quiet_hours(value)  # type: ignore[arg-type]
    except ValueError as e:
        # The API validates them; a row that slipped past is read as none rather than blocking outreach.
        log.warning("member %s: unusable quiet_hours %r (%s); ignored", member_id, value, e)
        return None


def _care_manager_id(member: MemberFacts) -> str | None:
    return member.care_manager.id if member.care_manager else None


def _told_name(to_role: str, name: str) -> str:
    if to_role == "member":
        return f"{name} (the member)"
    if to_role == "care_manager":
        return f"{name} (care manager)"
    return f"{name} (emergency contact)"


def _skip_reasons(decision: Send) -> str:
    return "; ".join(sorted({d.reason or "skipped" for d in decision.deliveries})) or "no recipient"


def _digest(target: str) -> str:
    return hashlib.sha256(target.encode()).hexdigest()


def _notify(conn: psycopg.Connection, channel: str, alert_id: str) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (channel, alert_id))


_ROLE = {"member": "member", "care_manager": "care_manager", "emergency_contacts": "emergency_contact"}
_PURPOSE = {"ladder": "alert", "repeat": "repeat"}
