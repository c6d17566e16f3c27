"""A database session for a stream agent that retries until the write lands.

Faust's `take()` acknowledges a batch in a `finally`, even when the loop body raises, so a write
must never escape the body unfinished: it is retried here, forever, with backoff (and finished
before a stopping worker acknowledges, see `streams.batches`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from streams import metrics
from streams.batches import finish

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryingSession:
    """One connection, reopened on failure; `run` retries a unit of work until it commits."""

    def __init__(self, database_url: str, prepare: Callable[[psycopg.AsyncConnection], Awaitable[None]]) -> None:
        self._url = database_url
        self._prepare = prepare
        self._conn: psycopg.AsyncConnection | None = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(self._url, connect_timeout=5)
            await self._prepare(self._conn)
        return self._conn

    async def _attempts(self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        async for attempt in AsyncRetrying(retry=retry_if_exception_type((psycopg.Error, OSError)),
                                           wait=wait_exponential(multiplier=0.2, max=5),
                                           before_sleep=self._on_retry):
            with attempt:
                try:
                    return await work(await self._connection())
                except (psycopg.Error, OSError):
                    await self._discard()
                    raise
        raise AssertionError("unreachable")

    async def _discard(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            finally:
                self._conn = None

    @staticmethod
    def _on_retry(state) -> None:
        metrics.STORE_RETRIES.inc()
        log.warning("database write failed (attempt %d), retrying: %s", state.attempt_number,
                    state.outcome.exception())

    async def run(self, work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        return await finish(self._attempts(work))
