"""The consume-write-commit loop of the services that turn a Kafka topic into rows.

At least once, made exactly once in effect by idempotent writes (each event's natural key): a batch
is written in one transaction and its offsets are committed only after that transaction has
committed. A failed write is retried with backoff until it succeeds or the service stops; it is never
skipped. A record that could never be stored would therefore stop the loop for good, so `decode`
refuses it instead, and the loop logs, counts and skips it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import psycopg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

E = TypeVar("E")  # one decoded event
R = TypeVar("R")  # what writing a batch returns, for the metrics

BATCH_MAX_RECORDS = 500
POLL_TIMEOUT_MS = 1000  # also bounds how long a stop waits for the poll loop to notice
RESTART_PAUSE_S = 5.0
# A write attempt gives up waiting for a connection after this, so an outage shows up as retries
# in the log and a stop request is noticed.
DB_WAIT_S = 5.0
FETCH_MAX_WAIT_MS = 500  # aiokafka's own default


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerSpec(Generic[E, R]):
    """One consumer of the loop: what it reads, how a record becomes an event, how a batch is stored."""

    name: str  # begins its log lines: "alert consumer"
    noun: str  # what one record is, in log lines: "alert event"
    topic: str
    group_id: str  # also the client id
    decode: Callable[[bytes | None], E]
    refused: type[Exception]  # what `decode` raises for a record that can never be stored
    # Runs inside the batch's transaction; retried whole when PostgreSQL fails.
    write: Callable[[psycopg.AsyncConnection, list[E]], Awaitable[R]]
    # Called once the batch has committed, with what `write` returned (counting before the commit
    # would count a retried batch twice).
    written: Callable[[list[E], R], None]
    count_refused: Callable[[], object]
    count_retry: Callable[[], object]
    log: logging.Logger  # the service's own, so its lines keep its name
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the service is stopping."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


def decode_batch(spec: ConsumerSpec[E, R], batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> list[E]:
    """The events of a fetched batch in order; refused records are logged, counted and left out."""
    events = []
    for tp, records in batches.items():
        for record in records:
            try:
                events.append(spec.decode(record.value))
            except spec.refused as e:
                spec.count_refused()
                spec.log.error("skipping malformed %s %s[%d]@%d (key %r): %s", spec.noun, tp.topic, tp.partition,
                               record.offset, record.key, e)
    return events


def next_offsets(batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> dict[TopicPartition, int]:
    """The offsets to commit once a fetched batch is stored: each partition's next record."""
    return {tp: records[-1].offset + 1 for tp, records in batches.items()}


class TopicConsumer(Generic[E, R]):
    """Runs one `ConsumerSpec` until `stopping` is set; Kafka or PostgreSQL being down only delays the work."""

    def __init__(self, spec: ConsumerSpec[E, R], pool: AsyncConnectionPool, kafka_bootstrap: str,
                 stopping: asyncio.Event, *, alive: Callable[[], None] = lambda: None) -> None:
        """`alive` is called after each poll that found nothing and after each batch (a liveness file)."""
        self._spec = spec
        self._pool = pool
        self._kafka_bootstrap = kafka_bootstrap
        self._stopping = stopping
        self._alive = alive
        self._subscribed = False

    @property
    def subscribed(self) -> bool:
        """Whether the loop holds a started Kafka consumer in its group (a health probe)."""
        return self._subscribed

    async def run(self) -> None:
        """Consume until stopped, starting a new Kafka consumer after any error."""
        spec = self._spec
        while not self._stopping.is_set():
            consumer = AIOKafkaConsumer(
                spec.topic,
                bootstrap_servers=self._kafka_bootstrap,
                group_id=spec.group_id,
                client_id=spec.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=spec.fetch_max_wait_ms,
            )
            try:
                await consumer.start()
                self._subscribed = True
                spec.log.info("%s subscribed to %s at %s", spec.name, spec.topic, self._kafka_bootstrap)
                await self._consume(consumer)
            except KafkaError as e:
                spec.log.warning("%s lost Kafka (%r); reconnecting in %.0f s", spec.name, e, RESTART_PAUSE_S)
                await pause(self._stopping, RESTART_PAUSE_S)
            except Exception:
                # A loop that dies quietly stops what it feeds (alerts reaching care managers, claims being
                # opened): log loudly and go on.
                spec.log.exception("%s failed; restarting in %.0f s", spec.name, RESTART_PAUSE_S)
                await pause(self._stopping, RESTART_PAUSE_S)
            finally:
                self._subscribed = False
                await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=BATCH_MAX_RECORDS)
            if not batches:
                self._alive()
                continue
            events = decode_batch(self._spec, batches)
            if events and not await self._store(events):
                return  # stopping mid-retry: leave the offsets so the batch comes again
            try:
                await consumer.commit(next_offsets(batches))
            except KafkaError as e:
                # The rows are stored; a rebalance means the batch is redelivered and stored as a no-op.
                self._spec.log.warning("committing %s offsets failed, the batch will be redelivered: %r",
                                       self._spec.noun, e)
            self._alive()

    async def _store(self, events: list[E]) -> bool:
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
                        result = await self._spec.write(conn, events)
        except psycopg.Error:
            return False
        self._spec.written(events, result)
        return True

    def _retrying(self, state: RetryCallState) -> None:
        self._spec.count_retry()
        wait_s = state.next_action.sleep if state.next_action else 0.0
        error = state.outcome.exception() if state.outcome else None
        self._spec.log.warning("writing %ss failed (attempt %d), retrying in %.1f s: %r", self._spec.noun,
                               state.attempt_number, wait_s, error)
