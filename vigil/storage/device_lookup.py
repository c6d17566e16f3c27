"""Device registry look-ups for ingest: a periodically refreshed snapshot plus look-ups on a miss.

A device registered a moment ago publishes at once, so a miss asks the database before refusing;
misses are remembered briefly so a flood from an unknown device does not become a flood of queries.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg

from vigil.telemetry import RegisteredDevice

log = logging.getLogger(__name__)
_QUERY = "SELECT device_id, member_id, enabled FROM devices"


class DeviceRegistry:
    """Thread-safe cache of the devices table."""

    def __init__(self, database_url: str, *, refresh_s: float = 5.0, miss_ttl_s: float = 2.0) -> None:
        self._url = database_url
        self._refresh_s = refresh_s
        self._miss_ttl_s = miss_ttl_s
        self._devices: dict[str, RegisteredDevice] = {}
        self._misses: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._refresh_loop, name="registry-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> None:
        with psycopg.connect(self._url, connect_timeout=5) as conn:
            rows = conn.execute(_QUERY).fetchall()
        snapshot = {r[0]: RegisteredDevice(*r) for r in rows}
        with self._lock:
            self._devices = snapshot

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                self.refresh()
            except psycopg.Error as e:
                # Keep serving the last snapshot: a database outage must not stop ingest.
                log.warning("device registry refresh failed, keeping the last snapshot: %s", e)

    def cached(self, device_id: str) -> RegisteredDevice | None:
        """The snapshot's entry, without asking the database: the hot path for known devices."""
        return self._devices.get(device_id)

    def lookup(self, device_id: str) -> RegisteredDevice | None:
        with self._lock:
            found = self._devices.get(device_id)
            missed_at = self._misses.get(device_id)
        if found is not None:
            return found
        if missed_at is not None and time.monotonic() - missed_at < self._miss_ttl_s:
            return None
        try:
            with psycopg.connect(self._url, connect_timeout=3) as conn:
                row = conn.execute(_QUERY + " WHERE device_id = %s", (device_id,)).fetchone()
        except psycopg.Error as e:
            log.warning("device look-up for %s failed: %s", device_id, e)
            raise
        with self._lock:
            if row is None:
                self._misses[device_id] = time.monotonic()
                return None
            device = RegisteredDevice(*row)
            self._devices[device_id] = device
            return device
