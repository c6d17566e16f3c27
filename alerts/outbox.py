"""The outreach outbox: claiming rows that are due, and recording what their send came to.

Rows are written by the step that decided to send them, in that step's transaction (`alerts.ladder_store`);
here they are claimed with `FOR UPDATE SKIP LOCKED`, marked `sending` with a lease and committed
before the send, so that two senders never take the same row and a crash mid-send leaves a trace.
A row grouped into another alert's message is never claimed: it follows its carrier.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from vigil.channels import ALERTS_CHANNEL
from vigil.delivery import DeliveryResult

# Longer than the slowest send the sender makes in one claim (three Apprise tries with their socket
# timeouts and the waits between them), so a live sender never loses a row it is still sending.
LEASE_S = 120
MAX_ATTEMPTS = 8
RETRY_FIRST_S = 15
RETRY_CAP_S = 600

# A row still `sending` after its lease ran out was claimed by a sender that stopped mid-send (a
# crash, a kill -9, a lost leadership): whether its message went out is unknown, and it is sent
# again. A duplicate beats a lost safety message, and the window for one is a single UPDATE: the
# one that would have recorded the send.
_CLAIM = """
WITH due AS (
    SELECT id FROM outreach
    WHERE grouped_into IS NULL
      AND ((status = 'pending' AND next_attempt_at <= now())
           OR (status = 'sending' AND lease_until <= now() AND attempts < %(max_attempts)s))
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE outreach o
SET status = 'sending', attempts = o.attempts + 1, lease_until = now() + %(lease_s)s * interval '1 second',
    updated_at = clock_timestamp()
FROM due WHERE o.id = due.id
RETURNING o.id, o.alert_id::text, o.step, o.channel, o.target, o.title, o.body, o.attempts
"""
# Claimed and abandoned on every one of its attempts: given up, as a send failing eight times is.
_ABANDONED = """
UPDATE outreach
SET status = 'failed', lease_until = NULL, updated_at = clock_timestamp(),
    reason = coalesce(reason || '; ', '') || 'the sender stopped during the last attempt'
WHERE status = 'sending' AND grouped_into IS NULL AND lease_until <= now() AND attempts >= %(max_attempts)s
RETURNING alert_id::text
"""
# `attempts` in the WHERE proves the row is still this claim's: a row whose lease ran out and was
# claimed again has a higher count, and the later claim records it.
_RECORD = """
UPDATE outreach
SET status = %(status)s, reason = %(reason)s, lease_until = NULL, updated_at = clock_timestamp(),
    sent_at = CASE WHEN %(sent)s THEN clock_timestamp() END,
    next_attempt_at = CASE WHEN %(retry_in_s)s::integer IS NULL THEN next_attempt_at
                           ELSE clock_timestamp() + %(retry_in_s)s::integer * interval '1 second' END
WHERE id = %(id)s AND status = 'sending' AND attempts = %(attempts)s
RETURNING alert_id::text
"""
_FOLLOW_CARRIER = """
UPDATE outreach g
SET status = c.status, reason = c.reason, sent_at = c.sent_at, attempts = c.attempts, updated_at = c.updated_at
FROM outreach c
WHERE c.id = %s AND g.grouped_into = c.id
RETURNING g.alert_id::text
"""
# When leadership changes hands, the previous leader's session has ended (that is what freed the
# lock), so no live sender holds these leases: their rows are sent again at once instead of after
# the lease. Same trade as above: a possible duplicate rather than a late safety message.
_EXPIRE_LEASES = "UPDATE outreach SET lease_until = now() WHERE status = 'sending' AND lease_until > now()"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A claimed row: what to send where, and the attempt this claim is."""

    id: int
    alert_id: str
    step: int
    channel: str
    target: str
    title: str
    body: str
    attempts: int


def retry_delay_s(attempts: int) -> int:
    """The wait before attempt `attempts + 1`: doubling from `RETRY_FIRST_S`, capped at `RETRY_CAP_S`."""
    return min(RETRY_FIRST_S * 2 ** max(attempts - 1, 0), RETRY_CAP_S)


def claim(conn: psycopg.Connection, limit: int) -> list[OutboxMessage]:
    """Take up to `limit` due rows for sending; committed before this returns (autocommit or own transaction)."""
    with conn.transaction():
        abandoned = [row[0] for row in conn.execute(_ABANDONED, {"max_attempts": MAX_ATTEMPTS})]
        _notify_alerts(conn, abandoned)
        rows = conn.execute(_CLAIM, {"limit": limit, "lease_s": LEASE_S, "max_attempts": MAX_ATTEMPTS}).fetchall()
    return [OutboxMessage(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a send makes of its row: the new status, the reason shown, and when to try again (pending only)."""

    status: str
    reason: str | None = None
    retry_in_s: int | None = None


def outcome_of(result: DeliveryResult, attempts: int) -> Outcome:
    """Sent; failed for good (a URL that can never work, or the last attempt); or pending for a later attempt."""
    if result.ok:
        return Outcome("sent")
    if result.permanent:
        return Outcome("failed", result.reason)
    if attempts >= MAX_ATTEMPTS:
        return Outcome("failed", f"gave up after {attempts} attempts: {result.reason}")
    return Outcome("pending", result.reason, retry_delay_s(attempts))


def record(conn: psycopg.Connection, message: OutboxMessage, result: DeliveryResult) -> str | None:
    """Write what the send of `message` came to; the row's new status, or None when the claim was lost."""
    outcome = outcome_of(result, message.attempts)
    params = {"status": outcome.status, "reason": outcome.reason, "sent": result.ok, "retry_in_s": outcome.retry_in_s,
              "id": message.id, "attempts": message.attempts}
    with conn.transaction():
        row = conn.execute(_RECORD, params).fetchone()
        if row is None:
            return None
        followers = [r[0] for r in conn.execute(_FOLLOW_CARRIER, (message.id,))]
        _notify_alerts(conn, [row[0], *followers])
    return outcome.status


def expire_leases(conn: psycopg.Connection) -> int:
    """Make every `sending` row claimable now (a new leader's first act); how many there were."""
    with conn.transaction():
        return conn.execute(_EXPIRE_LEASES).rowcount


def _notify_alerts(conn: psycopg.Connection, alert_ids: list[str]) -> None:
    """The alerts whose outreach log changed, for the console (delivered at commit)."""
    for alert_id in sorted(set(alert_ids)):
        conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, alert_id))
