"""The outreach sender: due outbox rows out through Apprise, a few at a time, results written back.

It wakes on `vigil_outreach` (a step queued messages) and polls every `POLL_S` for retries falling
due. Sends run on a small thread pool so that one slow or dead channel (each try may wait on socket
timeouts) never holds up a message to someone else.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
from psycopg_pool import ConnectionPool
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from alerts.metrics import OUTREACH_FAILED, OUTREACH_SENT
from alerts.outbox import OutboxMessage, claim, record
from vigil.channels import OUTREACH_CHANNEL
from vigil.delivery import deliver, load_plugins
from vigil.storage.schema import describe

log = logging.getLogger(__name__)

WORKERS = 4
POLL_S = 1.0
_RETRY_S = 2.0
_STOP_WAIT_S = 30.0


class Sender:
    """Claims due rows up to the free threads, sends each, records each."""

    def __init__(self, database_url: str, workers: int = WORKERS) -> None:
        self._database_url = database_url
        self._workers = workers
        self._stopping = threading.Event()
        self._slot_free = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pool: ConnectionPool | None = None
        self._sends: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._stopping.clear()
        load_plugins()
        self._pool = ConnectionPool(self._database_url, min_size=1, max_size=self._workers + 1, open=True,
                                    kwargs={"autocommit": True}, name="vigil-outreach-sender",
                                    check=ConnectionPool.check_connection)
        self._sends = ThreadPoolExecutor(self._workers, thread_name_prefix="outreach-send")
        self._thread = threading.Thread(target=self._run, name="outreach-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop claiming; sends in flight finish (their rows are recorded) within `_STOP_WAIT_S`."""
        self._stopping.set()
        self._slot_free.set()
        if self._thread is not None:
            self._thread.join(POLL_S + 5)
            self._thread = None
        if self._sends is not None:
            self._sends.shutdown(wait=True, cancel_futures=True)
            self._sends = None
        if self._pool is not None:
            self._pool.close(timeout=_STOP_WAIT_S)
            self._pool = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._database_url, autocommit=True, connect_timeout=5) as listen:
                    listen.execute(f"LISTEN {OUTREACH_CHANNEL}")
                    log.info("outreach sender listening on %s", OUTREACH_CHANNEL)
                    self._loop(listen)
            except psycopg.Error as e:
                log.warning("outreach sender lost the database (%s); again in %.0f s", describe(e), _RETRY_S)
                self._stopping.wait(_RETRY_S)
            except Exception:
                # A sender that dies quietly sends nothing more: log loudly and go on.
                log.exception("outreach sender failed; again in %.0f s", _RETRY_S)
                self._stopping.wait(_RETRY_S)

    def _loop(self, listen: psycopg.Connection) -> None:
        assert self._pool is not None
        while not self._stopping.is_set():
            with self._lock:
                free = self._workers - self._busy
                self._slot_free.clear()
            claimed: list[OutboxMessage] = []
            if free > 0:
                with self._pool.connection() as conn:
                    claimed = claim(conn, free)
                for message in claimed:
                    self._submit(message)
            if free == 0 or len(claimed) == free:
                # More may be due than there were threads: go on as soon as one is free.
                self._slot_free.wait(POLL_S)
            else:
                for _ in listen.notifies(timeout=POLL_S, stop_after=1):
                    pass

    def _submit(self, message: OutboxMessage) -> None:
        assert self._sends is not None
        with self._lock:
            self._busy += 1
        future = self._sends.submit(self._send, message)
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        with self._lock:
            self._busy -= 1
        self._slot_free.set()
        if future.exception() is not None:
            # The row stays `sending` and is sent again when its lease runs out.
            log.error("sending an outreach message failed unexpectedly", exc_info=future.exception())

    def _send(self, message: OutboxMessage) -> None:
        assert self._pool is not None
        result = deliver(message.target, message.title, message.body)
        # The message is out (or not); a database hiccup now must not leave the row to be sent again
        # when its lease runs out, so recording it is retried for a while.
        for attempt in Retrying(retry=retry_if_exception_type(psycopg.OperationalError), stop=stop_after_attempt(5),
                                wait=wait_fixed(1), reraise=True):
            with attempt, self._pool.connection() as conn:
                status = record(conn, message, result)
        if result.ok:
            OUTREACH_SENT.labels(message.channel).inc()
            log.info("outreach %d (alert %s, step %d) sent by %s", message.id, message.alert_id, message.step,
                     message.channel)
            return
        OUTREACH_FAILED.labels(message.channel, str(status == "failed").lower()).inc()
        log.warning("outreach %d (alert %s, step %d) by %s failed, attempt %d, now %s: %s", message.id,
                    message.alert_id, message.step, message.channel, message.attempts, status, result.reason)
