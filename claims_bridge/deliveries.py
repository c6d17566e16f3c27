"""The delivery worker: due rows of the claim outbox POSTed to the insurer, each attempt recorded.

A row is leased (`FOR UPDATE SKIP LOCKED`, `lease_until` past the slowest possible attempt) and the
lease committed before the POST, so two bridges never send one claim at the same time; a bridge
killed mid-attempt leaves the lease to run out, and the claim is sent again under the same
`Idempotency-Key` with the same bytes: the insurer receives one claim, whatever it is told twice.
The attempt count lives in the row, so the backoff goes on across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from claims_bridge.metrics import DELIVERY_ATTEMPTS, OLDEST_PENDING_DELIVERY_AGE
from claims_bridge.rounds import Wakeup, run_rounds
from claims_bridge.webhook import AttemptOutcome, post_claim
from vigil.channels import CLAIM_DELIVERIES_CHANNEL
from vigil.claims.backoff import next_delay_s
from vigil.settings import Settings
from vigil.storage.claims import record_delivered, record_gave_up

log = logging.getLogger(__name__)

SLOTS = 8  # attempts in flight per bridge
DB_WAIT_S = 5.0
# Beyond the attempt's own deadline (`VIGIL_CLAIMS_TIMEOUT_S`): time to record what it came to.
LEASE_MARGIN_S = 30.0

# Claims confirmed while no insurer endpoint was configured wait as `held`; the give-up clock starts
# when there is somewhere to deliver them.
_RELEASE_HELD = """
UPDATE claim_deliveries
SET status = 'pending', next_attempt_at = now(),
    give_up_at = greatest(give_up_at, now() + %(give_up_s)s * interval '1 second')
WHERE status = 'held'
RETURNING claim_id::text
"""
_LEASE = """
WITH due AS (
    SELECT claim_id FROM claim_deliveries
    WHERE status = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until <= now())
    ORDER BY next_attempt_at, claim_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE claim_deliveries d
SET attempts = d.attempts + 1, lease_until = now() + %(lease_s)s * interval '1 second'
FROM due WHERE d.claim_id = due.claim_id
RETURNING d.claim_id::text, d.body, d.attempts, d.give_up_at
"""
_ATTEMPT = """
INSERT INTO claim_delivery_attempts (claim_id, attempt, at, duration_ms, status_code, error, outcome)
VALUES (%(claim_id)s, %(attempt)s, %(at)s, %(duration_ms)s, %(status_code)s, %(error)s, %(outcome)s)
"""
# `attempts` proves the lease is still this attempt's: a row whose lease ran out and was taken again
# has a higher count, and the later attempt decides what happens next.
_STILL_OURS = """
SELECT status FROM claim_deliveries
WHERE claim_id = %(claim_id)s AND status = 'pending' AND attempts = %(attempt)s
FOR UPDATE
"""
_DELIVERY_STATUS = "SELECT status FROM claim_deliveries WHERE claim_id = %s FOR UPDATE"
_RETRY_LATER = """
UPDATE claim_deliveries SET next_attempt_at = %(next_at)s, lease_until = NULL, last_error = %(error)s
WHERE claim_id = %(claim_id)s
"""
_OLDEST_PENDING = """
SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float FROM claim_deliveries WHERE status = 'pending'
"""


@dataclass(frozen=True, slots=True)
class Leased:
    """A delivery row taken for one attempt: the exact body, and which attempt this is."""

    claim_id: str
    body: bytes
    attempt: int
    give_up_at: datetime


async def release_held(conn: AsyncConnection, *, give_up_s: int) -> int:
    """Queue the claims held while no webhook was configured; how many."""
    async with conn.transaction():
        cur = await conn.execute(_RELEASE_HELD, {"give_up_s": give_up_s})
        released = cur.rowcount
        if released:
            await conn.execute("SELECT pg_notify(%s, '')", (CLAIM_DELIVERIES_CHANNEL,))
    return released


async def lease_due(conn: AsyncConnection, *, limit: int, lease_s: float) -> list[Leased]:
    """Take up to `limit` due rows for one attempt each; committed before this returns."""
    async with conn.transaction():
        cur = await conn.execute(_LEASE, {"limit": limit, "lease_s": lease_s})
        rows = await cur.fetchall()
    return [Leased(claim_id, bytes(body), attempt, give_up_at) for claim_id, body, attempt, give_up_at in rows]


async def record_attempt(conn: AsyncConnection, leased: Leased, outcome: AttemptOutcome, *, started_at: datetime,
                         now: datetime, retry_in_s: float) -> str:
    """Write the attempt and what follows from it; the attempt's outcome (delivered, retry or failed)."""
    async with conn.transaction():
        if outcome.delivered:
            cur = await conn.execute(_DELIVERY_STATUS, (leased.claim_id,))
            row = await cur.fetchone()
            # Recorded already by another attempt that the insurer answered too: it is one claim to them.
            if row is not None and row[0] != "delivered":
                await record_delivered(conn, leased.claim_id, now=now)
            result = "delivered"
        else:
            cur = await conn.execute(_STILL_OURS, {"claim_id": leased.claim_id, "attempt": leased.attempt})
            ours = await cur.fetchone() is not None
            if ours and now >= leased.give_up_at:
                reason = f"not delivered after {leased.attempt} attempts; the last: {outcome.error}"
                await record_gave_up(conn, leased.claim_id, now=now, reason=reason)
                result = "failed"
            else:
                if ours:
                    # The last attempt falls at the give-up time, not after it.
                    next_at = min(now + timedelta(seconds=retry_in_s), leased.give_up_at)
                    await conn.execute(_RETRY_LATER, {"claim_id": leased.claim_id, "next_at": next_at,
                                                      "error": outcome.error})
                result = "retry"
        await conn.execute(_ATTEMPT, {
            "claim_id": leased.claim_id, "attempt": leased.attempt, "at": started_at,
            "duration_ms": outcome.duration_ms, "status_code": outcome.status_code, "error": outcome.error,
            "outcome": result,
        })
    return result


class DeliveryWorker:
    """Delivers due claims, up to `SLOTS` at once, woken by a newly confirmed claim or every second."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, stopping: asyncio.Event, *,
                 alive: Callable[[], None]) -> None:
        assert settings.claims_webhook_url is not None and settings.claims_webhook_secret is not None
        self._pool = pool
        self._settings = settings
        self._url = settings.claims_webhook_url
        self._secret = settings.claims_webhook_secret
        self._stopping = stopping
        self._alive = alive
        self._lease_s = settings.claims_timeout_s + LEASE_MARGIN_S
        self._client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            self._client = client
            wakeup = Wakeup(self._settings.database_url, CLAIM_DELIVERIES_CHANNEL, self._stopping)
            await run_rounds("claim delivery", self.round, wakeup, self._stopping, alive=self._alive)

    async def release_held(self) -> None:
        async with self._pool.connection(timeout=DB_WAIT_S) as conn:
            released = await release_held(conn, give_up_s=self._settings.claims_give_up_s)
        if released:
            log.info("%d claim(s) held without an insurer endpoint are now queued for %s", released, self._url)

    async def round(self) -> bool:
        """Attempt what is due; True when every slot was used (more may be due)."""
        async with self._pool.connection(timeout=DB_WAIT_S) as conn:
            leased = await lease_due(conn, limit=SLOTS, lease_s=self._lease_s)
            cur = await conn.execute(_OLDEST_PENDING)
            OLDEST_PENDING_DELIVERY_AGE.set((await cur.fetchone())[0])
        results = await asyncio.gather(*(self._attempt(row) for row in leased), return_exceptions=True)
        for row, result in zip(leased, results, strict=True):
            if isinstance(result, BaseException):
                # Unrecorded: the row is attempted again when its lease runs out, under the same key.
                log.error("recording the delivery of claim %s failed", row.claim_id, exc_info=result)
        return len(leased) == SLOTS

    async def _attempt(self, leased: Leased) -> None:
        assert self._client is not None
        started_at = datetime.now(UTC)
        outcome = await post_claim(self._client, url=self._url, secret=self._secret, claim_id=leased.claim_id,
                                   body=leased.body, timeout_s=self._settings.claims_timeout_s)
        retry_in_s = next_delay_s(leased.attempt, cap_s=self._settings.claims_retry_max_s, rand=random.random)
        # What the insurer said must be kept: a lost record would resend the claim when the lease runs out.
        async for attempt in AsyncRetrying(retry=retry_if_exception_type(psycopg.OperationalError),
                                           stop=stop_after_attempt(5), wait=wait_fixed(1), reraise=True):
            with attempt:
                async with self._pool.connection(timeout=DB_WAIT_S) as conn:
                    result = await record_attempt(conn, leased, outcome, started_at=started_at,
                                                  now=datetime.now(UTC), retry_in_s=retry_in_s)
        DELIVERY_ATTEMPTS.labels(result).inc()
        if result == "delivered":
            log.info("claim %s delivered (attempt %d, HTTP %s, %d ms)", leased.claim_id, leased.attempt,
                     outcome.status_code, outcome.duration_ms)
        elif result == "failed":
            log.error("claim %s given up after %d attempts: %s", leased.claim_id, leased.attempt, outcome.error)
        else:
            log.warning("claim %s attempt %d failed, next in %.1f s: %s", leased.claim_id, leased.attempt,
                        retry_in_s, outcome.error)
