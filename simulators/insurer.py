"""A stand-in insurer for the demo and the live tests: a claims endpoint that checks Vigil's signature,
keeps each claim once by its `Idempotency-Key`, and answers back through Vigil's signed status call.

Real insurers run their own claims systems; this one lets a newcomer see a claim go all the way (filed,
accepted with a claim number, paid) on one machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from vigil.claims.signing import sign, verify

MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FiledClaim:
    """A claim as the insurer holds it: the key it came with, its body, and when it first arrived."""

    key: str
    claim: dict
    at: float


class Insurer:
    """Runs the endpoint in a thread between `start` and `stop`; `filed` holds one entry per claim."""

    def __init__(self, secret: str, *, host: str = "127.0.0.1", port: int = 0,
                 on_filed: Callable[[FiledClaim], None] | None = None) -> None:
        self.filed: dict[str, FiledClaim] = {}
        self.deliveries = 0  # every POST with a good signature, repeats included
        self.refused = 0  # POSTs with a missing or wrong signature
        self._secret = secret
        self._on_filed = on_filed
        self._lock = threading.Condition()
        insurer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(min(length, MAX_BODY_BYTES))
                status = insurer._receive(self.headers.get("Idempotency-Key"), raw,
                                          self.headers.get("X-Vigil-Signature"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="insurer", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/claims"

    def start(self) -> Insurer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, key: str | None, raw: bytes, signature: str | None) -> int:
        if not verify(self._secret, raw, signature):
            with self._lock:
                self.refused += 1
            return 401
        if not key:
            return 400
        try:
            claim = json.loads(raw)
        except ValueError:
            return 400
        with self._lock:
            self.deliveries += 1
            first = key not in self.filed
            if first:
                self.filed[key] = FiledClaim(key, claim, time.time())
            self._lock.notify_all()
        if first and self._on_filed is not None:
            self._on_filed(self.filed[key])
        return 201 if first else 200

    def wait_for_claim(self, key: str, timeout_s: float) -> FiledClaim | None:
        """The claim filed under `key`, waiting up to `timeout_s` for it."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while key not in self.filed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)
            return self.filed[key]

    def answer(self, api_url: str, claim_id: str, status: str, *, number: str | None = None,
               note: str | None = None) -> httpx.Response:
        """Tell Vigil how the claim stands, signed as Vigil expects (`POST /api/v1/claims/{id}/status`)."""
        body = {"status": status, "claim_id": claim_id}
        if number:
            body["insurer_claim_number"] = number
        if note:
            body["note"] = note
        raw = json.dumps(body).encode()
        return httpx.post(f"{api_url.rstrip('/')}/api/v1/claims/{claim_id}/status", content=raw, timeout=15,
                          headers={"Content-Type": "application/json", "X-Vigil-Signature": sign(self._secret, raw)})
