"""The incidents-topic consumer: `IncidentOpened` events in, rows in the incidents table out.

At least once, made exactly once in effect by the incident's natural id: a batch is written in one
transaction and its offsets are committed only after that transaction has committed. A failed write
is retried with backoff until it succeeds or the service stops; it is never skipped. A record that
can never be stored is logged, counted and skipped (`claims_bridge.incident_decoding`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from claims_bridge.incident_decoding import MalformedIncident, decode_incident
from claims_bridge.incident_store import insert_incidents
from claims_bridge.metrics import INCIDENT_STORE_RETRIES, INCIDENTS_RECEIVED, MALFORMED_INCIDENTS
from claims_bridge.rounds import pause
from vigil.events import IncidentOpened
from vigil.settings import Settings
from vigil.topics import INCIDENTS

log = logging.getLogger(__name__)
GROUP_ID = "vigil-claims"
BATCH_MAX_RECORDS = 500
POLL_TIMEOUT_MS = 1000  # also bounds how long a stop waits for the poll loop to notice
RESTART_PAUSE_S = 5.0
# A write attempt gives up waiting for a connection after this, so an outage shows up as retries
# in the log and a stop request is noticed.
DB_WAIT_S = 5.0


class IncidentConsumer:
    """The consume-write-commit loop; `run` returns when `stopping` is set."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, stopping: asyncio.Event, *,
                 alive: Callable[[], None]) -> None:
        self._pool = pool
        self._settings = settings
        self._stopping = stopping
        self._alive = alive
        self.subscribed = False

    async def run(self) -> None:
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                INCIDENTS,
                bootstrap_servers=self._settings.kafka_bootstrap,
                group_id=GROUP_ID,
                client_id=GROUP_ID,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
            )
            try:
                await consumer.start()
                self.subscribed = True
                log.info("incident consumer subscribed to %s at %s", INCIDENTS, self._settings.kafka_bootstrap)
                await self._consume(consumer)
            except KafkaError as e:
                log.warning("incident consumer lost Kafka (%r); reconnecting in %.0f s", e, RESTART_PAUSE_S)
                await pause(self._stopping, RESTART_PAUSE_S)
            except Exception:
                # A consumer that dies quietly opens no more claims: log loudly and go on.
                log.exception("incident consumer failed; restarting in %.0f s", RESTART_PAUSE_S)
                await pause(self._stopping, RESTART_PAUSE_S)
            finally:
                self.subscribed = False
                await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_MAX_RECORDS)
            if not batches:
                self._alive()
                continue
            events = self._decode(batches)
            if events and not await self._store(events):
                return  # stopping mid-retry: leave the offsets so the batch comes again
            offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
            try:
                await consumer.commit(offsets)
            except KafkaError as e:
                # The rows are stored; a rebalance means the batch is redelivered and stored as a no-op.
                log.warning("committing incident offsets failed, the batch will be redelivered: %r", e)
            self._alive()

    @staticmethod
    def _decode(batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> list[IncidentOpened]:
        events = []
        for tp, records in batches.items():
            for record in records:
                try:
                    events.append(decode_incident(record.value))
                except MalformedIncident as e:
                    MALFORMED_INCIDENTS.inc()
                    log.error("skipping malformed incident %s[%d]@%d (key %r): %s", tp.topic, tp.partition,
                              record.offset, record.key, e)
        return events

    async def _store(self, events: list[IncidentOpened]) -> bool:
        """Write the batch, retrying database failures; False only when stopped before it succeeded."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(psycopg.Error),
            wait=wait_exponential(multiplier=0.5, max=30),
            stop=lambda _: self._stopping.is_set(),
            sleep=lambda seconds: pause(self._stopping, seconds),
            before_sleep=self._retrying,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._pool.connection(timeout=DB_WAIT_S) as conn, conn.transaction():
                        inserted = await insert_incidents(conn, events, settle_s=self._settings.claim_settle_s)
        except psycopg.Error:
            return False
        INCIDENTS_RECEIVED.labels("new").inc(len(inserted))
        INCIDENTS_RECEIVED.labels("redelivered").inc(len(events) - len(inserted))
        return True

    @staticmethod
    def _retrying(state: RetryCallState) -> None:
        INCIDENT_STORE_RETRIES.inc()
        wait_s = state.next_action.sleep if state.next_action else 0.0
        error = state.outcome.exception() if state.outcome else None
        log.warning("writing incidents failed (attempt %d), retrying in %.1f s: %r", state.attempt_number, wait_s,
                    error)
