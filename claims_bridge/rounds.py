"""How each worker of the bridge runs: rounds of work, woken by a NOTIFY or a poll, that never die.

A worker that stops quietly is a kill switch (no claim built, delivered or told), so every error a
round raises is logged and the worker goes on after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

from vigil.storage.schema import describe
from vigil.topic_consumer import pause

log = logging.getLogger(__name__)

POLL_S = 1.0
RETRY_S = 2.0


class Wakeup:
    """LISTENs on its channels in the background; `wait` returns early when a NOTIFY came."""

    def __init__(self, database_url: str, channels: str | tuple[str, ...], stopping: asyncio.Event) -> None:
        self._database_url = database_url
        self._channels = (channels,) if isinstance(channels, str) else channels
        self._stopping = stopping
        self._event = asyncio.Event()

    async def listen(self) -> None:
        """Hold the LISTEN until stopped, reconnecting when the database goes away."""
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self._database_url, autocommit=True,
                                                                 connect_timeout=5) as conn:
                    for channel in self._channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    # What was notified while not listening is found by the round this wakes.
                    self._event.set()
                    async for _ in conn.notifies():
                        self._event.set()
            except psycopg.Error as e:
                log.warning("listening on %s failed (%s); again in %.0f s", ", ".join(self._channels), describe(e),
                            RETRY_S)
                await pause(self._stopping, RETRY_S)
            except Exception:
                # Without wakeups the rounds still poll; say so loudly and listen again.
                log.exception("listening on %s failed; again in %.0f s", ", ".join(self._channels), RETRY_S)
                await pause(self._stopping, RETRY_S)

    async def wait(self, timeout_s: float) -> None:
        """Until a NOTIFY or the timeout, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._event.clear()


async def run_rounds(name: str, work: Callable[[], Awaitable[bool]], wakeup: Wakeup, stopping: asyncio.Event, *,
                     alive: Callable[[], None], poll_s: float = POLL_S) -> None:
    """Call `work` until stopped: again at once while it says there is more, else after a NOTIFY or `poll_s`.

    `alive` is called after each round that went through (the liveness file).
    """
    listener = asyncio.create_task(wakeup.listen(), name=f"{name}-listen")
    try:
        while not stopping.is_set():
            try:
                more = await work()
            except psycopg.Error as e:
                log.warning("%s lost the database (%s); again in %.0f s", name, describe(e), RETRY_S)
                await pause(stopping, RETRY_S)
                continue
            except Exception:
                log.exception("%s failed; again in %.0f s", name, RETRY_S)
                await pause(stopping, RETRY_S)
                continue
            alive()
            if not more:
                # A stop is noticed within `poll_s`.
                await wakeup.wait(poll_s)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
