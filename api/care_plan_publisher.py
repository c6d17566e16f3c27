"""The care-plans producer: writes `CarePlanChanged` to Kafka and waits for the broker's acknowledgement.

A background service of the API, like the alert consumer: it connects in the background (the API
starts while Kafka is down) and `publish` answers only once the record is acknowledged, or raises
`CarePlanNotPublished` (a 503) after trying for `timeout_s`. aiokafka retries a failed send by
itself until the batch is `timeout_s` old and then fails it for good, so a record that was
reported as not published is not written later behind a newer plan of the same member.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from api.errors import ServiceUnavailable
from api.ports import CarePlanPublisher
from vigil.care_plan_events import CarePlanChanged, care_plan_key, encode_care_plan
from vigil.settings import Settings
from vigil.topics import CARE_PLANS

log = logging.getLogger(__name__)
CLIENT_ID = "vigil-api-care-plans"
PUBLISH_TIMEOUT_S = 5.0
CONNECT_PAUSE_S = 2.0
# Beyond aiokafka's own expiry of the batch: only a wedged client gets here.
SAFETY_MARGIN_S = 10.0


class CarePlanNotPublished(ServiceUnavailable):
    """Kafka did not acknowledge a care-plan change in time; the message says why, the caller may retry."""


class KafkaCarePlanPublisher:
    """One aiokafka producer for the app's lifetime, started between `start` and `stop`."""

    def __init__(self, settings: Settings, *, timeout_s: float = PUBLISH_TIMEOUT_S) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._connected: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background; until then `publish` waits up to its timeout, then refuses."""
        self._connected = asyncio.Event()
        self._task = asyncio.create_task(self._connect(), name="care-plan-producer-connect")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def probe(self) -> bool:
        """Health: the producer has connected (it reconnects by itself after that)."""
        return self._producer is not None

    async def publish(self, event: CarePlanChanged) -> None:
        """Write the event keyed by member id and wait for the acknowledgement (acks=all)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        producer = await self._wait_connected(deadline)
        try:
            # Until `send` returns nothing is queued, so giving up here leaves nothing behind.
            delivery = await asyncio.wait_for(
                producer.send(CARE_PLANS, encode_care_plan(event), key=care_plan_key(event.member_id)),
                max(deadline - loop.time(), 0.1),
            )
            # Not cancelled on our side: aiokafka settles it once the batch expires.
            metadata = await asyncio.wait_for(asyncio.shield(delivery), self._timeout_s + SAFETY_MARGIN_S)
        except (KafkaError, TimeoutError) as e:
            log.warning("care plan v%d of %s not published: %r", event.version, event.member_id, e)
            raise CarePlanNotPublished(
                f"Kafka did not acknowledge the care-plan change within {self._timeout_s:.0f} s"
            ) from e
        log.info(
            "care plan v%d of %s published to %s[%d]@%d",
            event.version,
            event.member_id,
            CARE_PLANS,
            metadata.partition,
            metadata.offset,
        )

    async def _wait_connected(self, deadline: float) -> AIOKafkaProducer:
        if self._connected is None:
            raise CarePlanNotPublished("the care-plan producer is not running")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), max(deadline - asyncio.get_running_loop().time(), 0))
        if self._producer is None:
            raise CarePlanNotPublished(f"Kafka at {self._settings.kafka_bootstrap} is unreachable")
        return self._producer

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            client_id=CLIENT_ID,
            acks="all",
            linger_ms=0,
            # Also the age at which aiokafka stops retrying a batch and fails it.
            request_timeout_ms=int(self._timeout_s * 1000),
        )

    async def _connect(self) -> None:
        assert self._connected is not None
        while True:
            producer = self._new_producer()
            try:
                await producer.start()
            except KafkaError as e:
                await producer.stop()
                log.warning(
                    "care-plan producer cannot reach Kafka at %s (%r); retrying in %.0f s",
                    self._settings.kafka_bootstrap,
                    e,
                    CONNECT_PAUSE_S,
                )
                await asyncio.sleep(CONNECT_PAUSE_S)
            else:
                self._producer = producer
                self._connected.set()
                log.info("care-plan producer connected to %s", self._settings.kafka_bootstrap)
                return


class PlanOutbox:
    """The care-plan change of one open transaction, published before the transaction commits."""

    def __init__(self, publisher: CarePlanPublisher) -> None:
        self._publisher = publisher
        self.published: CarePlanChanged | None = None

    async def publish(self, event: CarePlanChanged, undone: str) -> None:
        """Publish while the transaction still holds the member's row lock.

        Committing only after Kafka's acknowledgement keeps the database and the topic in step: a
        503 leaves both as they were, and concurrent changes of one member reach the topic in
        version order (so compaction keeps the newest). `undone` says what the 503 left unchanged.
        """
        try:
            await self._publisher.publish(event)
        except ServiceUnavailable as e:
            raise ServiceUnavailable(f"{e}, so {undone}; try again shortly") from e
        self.published = event


@contextlib.asynccontextmanager
async def plan_transaction(conn: psycopg.AsyncConnection, publisher: CarePlanPublisher
                           ) -> AsyncIterator[PlanOutbox]:
    """A database transaction whose care-plan change reaches Kafka before the commit."""
    outbox = PlanOutbox(publisher)
    try:
        async with conn.transaction():
            yield outbox
    except psycopg.Error:
        if outbox.published is not None:
            _log_commit_failed(outbox.published)
        raise


def _log_commit_failed(event: CarePlanChanged) -> None:
    """The rare case the order above cannot rule out: acknowledged by Kafka, then the commit failed."""
    log.error(
        "care plan v%d of %s was published but the database did not commit it: the stream applies it "
        "while the API shows the previous plan, until the plan is changed again",
        event.version,
        event.member_id,
    )
