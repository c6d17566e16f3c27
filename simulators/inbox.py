"""A local inbox for outreach: an HTTP server that Apprise `json://` URLs post to, keeping what arrives.

The demo gives every simulated member, care manager and contact a `json://127.0.0.1:<port>/<who>`
channel, so the messages Vigil sends can be shown (and answered) on one machine without a mail or
SMS account.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Arrival:
    """One message as it reached the inbox: to whom (the URL path), what, and when (wall clock)."""

    path: str
    title: str
    body: str
    at: float


class Inbox:
    """Runs the receiver in a thread between `start` and `stop`; `arrivals` grows as messages come."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 on_arrival: Callable[[Arrival], None] | None = None) -> None:
        self.arrivals: list[Arrival] = []
        self._lock = threading.Condition()
        self._on_arrival = on_arrival
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {"message": raw.decode(errors="replace")}
                inbox._record(Arrival(self.path, str(payload.get("title", "")),
                                      str(payload.get("message", "")), time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the demo shows arrivals its own way

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="inbox", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, who: str) -> str:
        """The Apprise URL that delivers to this inbox under the path `/<who>`."""
        return f"json://127.0.0.1:{self.port}/{who}"

    def start(self) -> Inbox:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _record(self, arrival: Arrival) -> None:
        with self._lock:
            self.arrivals.append(arrival)
            self._lock.notify_all()
        if self._on_arrival is not None:
            self._on_arrival(arrival)

    def wait_for(self, predicate: Callable[[Arrival], bool], timeout_s: float) -> Arrival | None:
        """The first arrival (already here or still to come) that `predicate` accepts, or None in time."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                for arrival in self.arrivals:
                    if predicate(arrival):
                        return arrival
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)
