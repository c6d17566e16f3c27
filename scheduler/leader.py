"""Leadership: of the scheduler processes sharing a database, the one holding an advisory lock runs the jobs.

The lock is a session lock on a connection of its own, so it lasts exactly as long as that session:
a leader that dies (even by kill -9) loses its TCP connection, PostgreSQL ends the session and frees
the lock, and a standby, trying every `RETRY_S`, takes over.
"""

from __future__ import annotations

import logging

import psycopg

from vigil.storage.schema import describe

log = logging.getLogger(__name__)

# Arbitrary and constant; advisory locks are per database, so each Vigil database has its own leader.
LOCK_KEY = 0x5617_5C4E_D01E
RETRY_S = 2.0
# How often the leader checks that its session is still there, and how long that check may take.
CHECK_S = 2.0
_CHECK_TIMEOUT_MS = 5000


class LeaderLock:
    """The leadership lock and the session that holds it."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._conn: psycopg.Connection | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (never an exception) when another process does or the
        database cannot be reached."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            return bool(self._conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()[0])
        except psycopg.Error as e:
            log.warning("cannot try the scheduler leader lock: %s", describe(e))
            self.release()
            return False

    @property
    def reachable(self) -> bool:
        """Whether the last attempt reached the database (a standby that can is healthy)."""
        return self._conn is not None and not self._conn.closed

    def held(self) -> bool:
        """Whether the session holding the lock is still there: the lock lives exactly as long as it does."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
            return True
        except psycopg.Error as e:
            log.error("the scheduler leader lock's session is gone: %s", describe(e))
            return False

    def release(self) -> None:
        """End the session, which frees the lock if it was held."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> psycopg.Connection:
        # TCP keepalives notice a peer that vanished without closing (a host gone, a cut network)
        # within about 11 s, on both sides: the client's here, the server's through the session options,
        # so that PostgreSQL frees the lock of a leader it can no longer hear. A killed process closes
        # its socket at once.
        options = " ".join(f"-c {name}={value}" for name, value in (
            ("statement_timeout", _CHECK_TIMEOUT_MS), ("tcp_keepalives_idle", 5), ("tcp_keepalives_interval", 2),
            ("tcp_keepalives_count", 3)))
        return psycopg.connect(
            self._database_url, autocommit=True, connect_timeout=5, application_name="vigil-scheduler-leader",
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3, options=options,
        )
