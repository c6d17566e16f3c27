"""The alerts-topic consumer: `AlertChanged` events in, rows in the alerts table out.

The loop, its delivery guarantee and its retries are `vigil.topic_consumer`'s; this module says what
is read and how it is stored, and runs the loop in a task of the API process between `start` and `stop`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alerts.event_decoding import MalformedEvent, decode_alert_changed
from alerts.metrics import ALERT_EVENTS, ALERT_STORE_RETRIES, MALFORMED_ALERT_EVENTS
from alerts.store import apply_alert_changes
from vigil.events import AlertChanged
from vigil.settings import Settings
from vigil.topic_consumer import ConsumerSpec, TopicConsumer
from vigil.topics import ALERTS, HOT_PATH_FETCH_WAIT_MS

log = logging.getLogger(__name__)
GROUP_ID = "vigil-alerts"
STOP_GRACE_S = 15.0


def _count(events: list[AlertChanged], outcomes: list[str]) -> None:
    for event, outcome in zip(events, outcomes, strict=True):
        ALERT_EVENTS.labels(event.change, outcome).inc()


class AlertConsumer:
    """Runs the consume-write-commit loop in a task between `start` and `stop`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Planned for each newly raised alert in the transaction that stores it.
        self._ladder = settings.ladder
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pool: AsyncConnectionPool | None = None
        self._loop: TopicConsumer[AlertChanged, list[str]] | None = None

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
        spec = ConsumerSpec(
            name="alert consumer",
            noun="alert event",
            topic=ALERTS,
            group_id=GROUP_ID,
            decode=decode_alert_changed,
            refused=MalformedEvent,
            write=self._write,
            written=_count,
            count_refused=MALFORMED_ALERT_EVENTS.inc,
            count_retry=ALERT_STORE_RETRIES.inc,
            log=log,
            # On the path from a reading to a care manager's screen: no idle fetch wait.
            fetch_max_wait_ms=HOT_PATH_FETCH_WAIT_MS,
        )
        self._loop = TopicConsumer(spec, self._pool, self._settings.kafka_bootstrap, self._stopping)
        self._task = asyncio.create_task(self._loop.run(), name="alert-consumer")

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
        return (self._task is not None and not self._task.done() and self._loop is not None
                and self._loop.subscribed)

    async def _write(self, conn: AsyncConnection, events: list[AlertChanged]) -> list[str]:
        # The wall clock of each attempt: a batch retried after an outage is stamped when it is stored.
        return await apply_alert_changes(conn, events, datetime.now(UTC), ladder=self._ladder)
