"""Wiring of the claims bridge: one connection pool and the four workers, each in its own task."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg_pool import AsyncConnectionPool

from claims_bridge.builder import Builder
from claims_bridge.consumer import IncidentConsumer
from claims_bridge.deliveries import DeliveryWorker
from claims_bridge.liveness import Liveness
from claims_bridge.notices import NoticeWorker
from claims_bridge.rounds import RETRY_S
from vigil.settings import Settings
from vigil.storage.schema import describe
from vigil.topic_consumer import pause

log = logging.getLogger(__name__)
STOP_GRACE_S = 15.0


class ClaimsBridge:
    """The consumer, the builder, the delivery worker (when a webhook is configured) and the notice worker."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stopping = asyncio.Event()
        self._pool: AsyncConnectionPool | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every worker in the background; Kafka or PostgreSQL being down only delays the work."""
        self._stopping.clear()
        self._pool = AsyncConnectionPool(self._settings.database_url, min_size=1, max_size=8, open=False,
                                         kwargs={"autocommit": True}, check=AsyncConnectionPool.check_connection,
                                         name="vigil-claims-bridge")
        await self._pool.open(wait=False)
        names = ["incident consumer", "claim builder", "claim notices"]
        if self._settings.claims_webhook_url:
            names.append("claim delivery")
        else:
            log.warning("VIGIL_CLAIMS_WEBHOOK_URL is not set: confirmed claims are kept in Vigil (held), "
                        "not delivered to an insurer")
        liveness = Liveness(self._settings.state_dir, names)
        common = (self._pool, self._settings, self._stopping)
        workers: dict[str, Callable[[], Awaitable[None]]] = {
            "incident consumer": IncidentConsumer(*common, alive=liveness.beat("incident consumer")).run,
            "claim builder": Builder(*common, alive=liveness.beat("claim builder")).run,
            "claim notices": NoticeWorker(*common, alive=liveness.beat("claim notices")).run,
        }
        if "claim delivery" in names:
            delivery = DeliveryWorker(*common, alive=liveness.beat("claim delivery"))
            workers["claim delivery"] = functools.partial(self._deliver, delivery)
        self._tasks = [asyncio.create_task(self._keep(name, run), name=name) for name, run in workers.items()]

    async def stop(self) -> None:
        """Let each worker finish what it holds (within `STOP_GRACE_S`), then close the pool."""
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
            for task in late:
                log.warning("%s did not stop within %.0f s; cancelled", task.get_name(), STOP_GRACE_S)
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            self._tasks = []
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _deliver(self, delivery: DeliveryWorker) -> None:
        # Claims confirmed while no URL was set are queued before the first round; with the URL set,
        # nothing new is held.
        while not self._stopping.is_set():
            try:
                await delivery.release_held()
                break
            except psycopg.Error as e:
                log.warning("releasing held claims failed (%s); again in %.0f s", describe(e), RETRY_S)
                await pause(self._stopping, RETRY_S)
        await delivery.run()

    async def _keep(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run one worker until the stop; one that raises or returns early is logged and started again.

        Each worker catches its own errors, so this is the net under a bug: a worker that is gone
        would stop claims (or their delivery, or the member's notices) with nothing in the log.
        """
        while not self._stopping.is_set():
            try:
                await run()
            except Exception:
                log.exception("%s stopped by an error; starting it again in %.0f s", name, RETRY_S)
            else:
                if not self._stopping.is_set():
                    log.error("%s ended before the bridge stopped; starting it again in %.0f s", name, RETRY_S)
            await pause(self._stopping, RETRY_S)
