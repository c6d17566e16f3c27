"""The alerts-topic consumer: `AlertChanged` events in, rows in the alerts table out.

At least once, made exactly-once in effect by idempotent writes: a batch is written in one
transaction and its offsets are committed only after that transaction has committed. A failed
write is retried with backoff until it succeeds or the service stops; it is never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from alerts.event_decoding import MalformedEvent, decode_alert_changed
from alerts.metrics import ALERT_EVENTS, ALERT_STORE_RETRIES, MALFORMED_ALERT_EVENTS
from alerts.store import apply_alert_changes
from vigil.events import AlertChanged
from vigil.settings import Settings
from vigil.topics import ALERTS, HOT_PATH_FETCH_WAIT_MS

log = logging.getLogger(__name__)
GROUP_ID = "vigil-alerts"
BATCH_MAX_RECORDS = 500
POLL_TIMEOUT_MS = 1000  # also bounds how long `stop` waits for the poll loop to notice
RESTART_PAUSE_S = 5.0
# A write attempt gives up waiting for a connection after this, so an outage shows up as retries
# in the log and a stop request is noticed.
DB_WAIT_S = 5.0
STOP_GRACE_S = 15.0


class AlertConsumer:
    """Runs the consume-write-commit loop in a task between `start` and `stop`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Planned for each newly raised alert in the transaction that stores it.
        self._ladder = settings.ladder
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pool: AsyncConnectionPool | None = None
        self._subscribed = False

    async def start(self) -> None:
        """Begin consuming in the background; Kafka or PostgreSQL being down only delays the work."""
        self._stopping.clear()
        self._pool = AsyncConnectionPool(
            self._settings.database_url,
            min_size=1,
            max_size=2,
            open=False,
            check=AsyncConnectionPool.check_connection,
            name="vigil-alert-consumer",
        )
        await self._pool.open(wait=False)
        self._task = asyncio.create_task(self._run(), name="alert-consumer")

    async def stop(self) -> None:
        """Finish the batch in hand (uncommitted work is redelivered later) and close."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_GRACE_S)
            except TimeoutError:
                log.warning("alert consumer did not stop within %.0f s; cancelled", STOP_GRACE_S)
            self._task = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def probe(self) -> bool:
        """Health: the loop is alive and subscribed to the alerts topic."""
        return self._task is not None and not self._task.done() and self._subscribed

    async def _run(self) -> None:
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                ALERTS,
                bootstrap_servers=self._settings.kafka_bootstrap,
                group_id=GROUP_ID,
                client_id=GROUP_ID,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # On the path from a reading to a care manager's screen: no idle fetch wait.
                fetch_max_wait_ms=HOT_PATH_FETCH_WAIT_MS,
            )
            try:
                await consumer.start()
                self._subscribed = True
                log.info("alert consumer subscribed to %s at %s", ALERTS, self._settings.kafka_bootstrap)
                await self._consume(consumer)
            except KafkaError as e:
                log.warning("alert consumer lost Kafka (%r); reconnecting in %.0f s", e, RESTART_PAUSE_S)
                await self._pause(RESTART_PAUSE_S)
            except Exception:
                # A loop that dies quietly stops alerts reaching care managers: log loudly and go on.
                log.exception("alert consumer failed; restarting in %.0f s", RESTART_PAUSE_S)
                await self._pause(RESTART_PAUSE_S)
            finally:
                self._subscribed = False
                await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_MAX_RECORDS)
            if not batches:
                continue
            events = self._decode(batches)
            if events and not await self._store(events):
                return  # stopping mid-retry: leave the offsets so the batch comes again
            offsets = {tp: records[-1].offset + 1 for tp, records in batches.items()}
            try:
                await consumer.commit(offsets)
            except KafkaError as e:
                # The rows are stored; a rebalance means the batch is redelivered and applied as a no-op.
                log.warning("committing alert offsets failed, the batch will be redelivered: %r", e)

    @staticmethod
    def _decode(batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> list[AlertChanged]:
        events = []
        for tp, records in batches.items():
            for record in records:
                try:
                    events.append(decode_alert_changed(record.value))
                except MalformedEvent as e:
                    MALFORMED_ALERT_EVENTS.inc()
                    log.error(
                        "skipping malformed alert event %s[%d]@%d (key %r): %s",
                        tp.topic,
                        tp.partition,
                        record.offset,
                        record.key,
                        e,
                    )
        return events

    async def _store(self, events: list[AlertChanged]) -> bool:
        """Write the batch, retrying database failures; False only when stopped before it succeeded."""
        assert self._pool is not None
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(psycopg.Error),
            wait=wait_exponential(multiplier=0.5, max=30),
            stop=lambda _: self._stopping.is_set(),
            sleep=self._pause,
            before_sleep=self._retrying,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._pool.connection(timeout=DB_WAIT_S) as conn:
                        outcomes = await apply_alert_changes(conn, events, datetime.now(UTC), ladder=self._ladder)
        except psycopg.Error:
            return False
        for event, outcome in zip(events, outcomes, strict=True):
            ALERT_EVENTS.labels(event.change, outcome).inc()
        return True

    @staticmethod
    def _retrying(state: RetryCallState) -> None:
        ALERT_STORE_RETRIES.inc()
        wait_s = state.next_action.sleep if state.next_action else 0.0
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "writing alert events failed (attempt %d), retrying in %.1f s: %r",
            state.attempt_number,
            wait_s,
            error,
        )

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the service is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
