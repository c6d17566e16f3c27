"""A database session for a stream agent: what can pass later is retried, what cannot is handed back.

Faust's `take()` acknowledges a batch in a `finally`, even when the loop body raises, so a write
must never escape the body unfinished. An error that may pass on a later attempt (a lost
connection, a shutdown, a deadlock, too many connections...) is retried, forever, with backoff:
the batch waits for the database. An error about the rows themselves (a NUL in text, a number out
of range, a violated constraint) would be raised again on every attempt, so it is not retried: the
caller's fallback writes the batch row by row and records what is still refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from streams import metrics
from streams.shielding import finish
from vigil.storage import CONTENT_ERRORS, refused_for_content

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[psycopg.AsyncConnection], Awaitable[T]]


def transient(exc: BaseException) -> bool:
    """True for a failure that a later attempt may not meet: everything else the database or the
    network raises. Schema or permission errors count here too: an operator can fix them, and the
    batch must wait for that rather than be dropped."""
    return isinstance(exc, (psycopg.Error, OSError)) and not refused_for_content(exc)


class RetryingSession:
    """One connection, reopened on failure; `run` retries a unit of work until it commits.

    `prepare`, when given, runs on each new connection before any work (the readings sink's staging tables).
    """

    def __init__(self, database_url: str,
                 prepare: Callable[[psycopg.AsyncConnection], Awaitable[None]] | None = None) -> None:
        self._url = database_url
        self._prepare = prepare
        self._conn: psycopg.AsyncConnection | None = None

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(self._url, connect_timeout=5)
            if self._prepare is not None:
                await self._prepare(self._conn)
        return self._conn

    async def _attempts(self, work: Work[T]) -> T:
        async for attempt in AsyncRetrying(retry=retry_if_exception(transient),
                                           wait=wait_exponential(multiplier=0.2, max=5),
                                           before_sleep=self._on_retry):
            with attempt:
                conn = await self._connection()
                try:
                    return await work(conn)
                except Exception as e:
                    # A refused row leaves the connection idle and usable (its transaction was rolled
                    # back); anything else may have left it in an unknown state.
                    if not refused_for_content(e) or conn.info.transaction_status != TransactionStatus.IDLE:
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

    async def _attempts_or_fallback(self, work: Work[T], refused: Work[T] | None) -> T:
        try:
            return await self._attempts(work)
        except CONTENT_ERRORS as e:
            if refused is None:
                raise
            metrics.STORE_FALLBACKS.inc()
            log.warning("the database refused a batch for its content (%s); writing it row by row",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
            return await self._attempts(refused)

    async def run(self, work: Work[T], *, refused: Work[T] | None = None) -> T:
        """Run `work` until it commits; if the database refuses its rows, run `refused` instead
        (a fallback that must itself never be refused, e.g. one row at a time, recording refusals)."""
        return await finish(self._attempts_or_fallback(work, refused))
