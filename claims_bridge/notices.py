"""The notice worker: the member's messages about their claim, sent through Apprise, results written back.

Rows are written by the transaction that changed the claim (`vigil.storage.claims`); here they are
leased with `FOR UPDATE SKIP LOCKED` and the lease committed before the send, so two bridges never
send one notice. A request or reminder to confirm a claim that is no longer `prefilled` (the member
or their care manager confirmed it meanwhile) is skipped, with the reason, instead of sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from claims_bridge.metrics import NOTICES
from claims_bridge.rounds import Wakeup, run_rounds
from vigil.channels import CLAIM_NOTICES_CHANNEL
from vigil.claims.backoff import next_delay_s
from vigil.delivery import DeliveryResult, deliver, load_plugins
from vigil.settings import Settings

log = logging.getLogger(__name__)

SLOTS = 4  # sends in flight per bridge, each in a thread
DB_WAIT_S = 5.0
MAX_ATTEMPTS = 10
RETRY_BASE_S = 15.0
RETRY_CAP_S = 3_600.0
# Longer than the slowest send (`vigil.delivery`: three tries with their socket timeouts), so a live
# bridge never loses a notice it is still sending.
LEASE_S = 120

_SKIP_MOOT = """
UPDATE claim_notices n
SET status = 'skipped', lease_until = NULL,
    reason = 'not sent: the claim is ' || c.status || ' now, so there is nothing left to confirm'
FROM claims c
WHERE c.id = n.claim_id AND n.status = 'pending' AND n.purpose IN ('confirm_request', 'confirm_reminder')
  AND c.status <> 'prefilled' AND n.next_attempt_at <= now() AND (n.lease_until IS NULL OR n.lease_until <= now())
"""
_LEASE = """
WITH due AS (
    SELECT id FROM claim_notices
    WHERE status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until <= now())
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE claim_notices n
SET attempts = n.attempts + 1, lease_until = now() + %(lease_s)s * interval '1 second'
FROM due WHERE n.id = due.id
RETURNING n.id, n.claim_id::text, n.purpose, n.channel, n.target, n.title, n.body, n.attempts
"""
# `attempts` proves the row is still this lease's: one whose lease ran out and was taken again has a
# higher count, and the later send records it.
_RECORD = """
UPDATE claim_notices
SET status = %(status)s, reason = %(reason)s, lease_until = NULL,
    sent_at = CASE WHEN %(sent)s THEN clock_timestamp() END,
    next_attempt_at = CASE WHEN %(retry_in_s)s::float8 IS NULL THEN next_attempt_at
                           ELSE clock_timestamp() + %(retry_in_s)s::float8 * interval '1 second' END
WHERE id = %(id)s AND status = 'pending' AND attempts = %(attempts)s
"""


@dataclass(frozen=True, slots=True)
class Notice:
    """A leased notice: what to send where, and the attempt this is."""

    id: int
    claim_id: str
    purpose: str
    channel: str
    target: str
    title: str
    body: str
    attempts: int


@dataclass(frozen=True, slots=True)
class NoticeOutcome:
    """What a send makes of its row: the new status, the reason shown, and when to try again (pending only)."""

    status: str
    reason: str | None = None
    retry_in_s: float | None = None


def outcome_of(result: DeliveryResult, attempts: int, *, retry_in_s: float) -> NoticeOutcome:
    """Sent; failed for good (a URL that can never work, or the last attempt); or pending for a later attempt."""
    if result.ok:
        return NoticeOutcome("sent")
    if result.permanent:
        return NoticeOutcome("failed", result.reason)
    if attempts >= MAX_ATTEMPTS:
        return NoticeOutcome("failed", f"gave up after {attempts} attempts: {result.reason}")
    return NoticeOutcome("pending", result.reason, retry_in_s)


async def skip_moot(conn: AsyncConnection) -> int:
    """Skip the due requests to confirm claims that are confirmed (or further) already; how many."""
    async with conn.transaction():
        cur = await conn.execute(_SKIP_MOOT)
        return cur.rowcount


async def lease_due(conn: AsyncConnection, *, limit: int) -> list[Notice]:
    """Take up to `limit` due notices for one send each; committed before this returns."""
    async with conn.transaction():
        cur = await conn.execute(_LEASE, {"limit": limit, "lease_s": LEASE_S})
        return [Notice(*row) for row in await cur.fetchall()]


async def record_send(conn: AsyncConnection, notice: Notice, outcome: NoticeOutcome) -> bool:
    """Write what the send came to; False when the lease was lost meanwhile."""
    async with conn.transaction():
        cur = await conn.execute(_RECORD, {
            "status": outcome.status, "reason": outcome.reason, "sent": outcome.status == "sent",
            "retry_in_s": outcome.retry_in_s, "id": notice.id, "attempts": notice.attempts,
        })
        return cur.rowcount == 1


class NoticeWorker:
    """Sends due notices, up to `SLOTS` at once, woken by a new notice or every second."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, stopping: asyncio.Event, *,
                 alive: Callable[[], None]) -> None:
        self._pool = pool
        self._settings = settings
        self._stopping = stopping
        self._alive = alive

    async def run(self) -> None:
        # Apprise loads its plugins on first use (about 0.2 s); done now, not on the first notice.
        await asyncio.to_thread(load_plugins)
        wakeup = Wakeup(self._settings.database_url, CLAIM_NOTICES_CHANNEL, self._stopping)
        await run_rounds("claim notices", self.round, wakeup, self._stopping, alive=self._alive)

    async def round(self) -> bool:
        """Send what is due; True when every slot was used (more may be due)."""
        async with self._pool.connection(timeout=DB_WAIT_S) as conn:
            if skipped := await skip_moot(conn):
                NOTICES.labels("skipped").inc(skipped)
                log.info("%d request(s) to confirm a claim skipped: confirmed meanwhile", skipped)
            leased = await lease_due(conn, limit=SLOTS)
        results = await asyncio.gather(*(self._send(notice) for notice in leased), return_exceptions=True)
        for notice, result in zip(leased, results, strict=True):
            if isinstance(result, BaseException):
                # Unrecorded: the notice is sent again when its lease runs out.
                log.error("sending claim notice %d failed unexpectedly", notice.id, exc_info=result)
        return len(leased) == SLOTS

    async def _send(self, notice: Notice) -> None:
        result = await asyncio.to_thread(deliver, notice.target, notice.title, notice.body)
        retry_in_s = next_delay_s(notice.attempts, base_s=RETRY_BASE_S, cap_s=RETRY_CAP_S, rand=random.random)
        outcome = outcome_of(result, notice.attempts, retry_in_s=retry_in_s)
        async with self._pool.connection(timeout=DB_WAIT_S) as conn:
            recorded = await record_send(conn, notice, outcome)
        if not recorded:
            log.warning("claim notice %d was taken over while sending; the later send records it", notice.id)
            return
        NOTICES.labels(outcome.status).inc()
        if outcome.status == "sent":
            log.info("claim %s: %s notice %d sent by %s", notice.claim_id, notice.purpose, notice.id, notice.channel)
        else:
            log.warning("claim %s: %s notice %d by %s failed (attempt %d), now %s: %s", notice.claim_id,
                        notice.purpose, notice.id, notice.channel, notice.attempts, outcome.status, outcome.reason)
