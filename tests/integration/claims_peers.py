"""Real peers for the claims tests: an insurer's claims endpoint (a threaded HTTP server that can fail, answer
slowly, drop the connection, hold a request and check signatures), claims bridge processes, and the rows
(members, devices, alerts, readings, incidents) a claim is built from."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from claims_bridge.incident_store import insert_incidents
from tests.integration.outreach_peers import ServiceChild, free_port, sql
from vigil.claims import building
from vigil.claims.signing import verify
from vigil.events import IncidentOpened, alert_id
from vigil.rules.incidents import incident_id

SECRET = "insurer-shared-secret-0123456789"


@dataclass(frozen=True, slots=True)
class Received:
    """One POST that reached the insurer: its key, exact body, whether the signature held, what it got back."""

    key: str | None
    body: bytes
    signature_ok: bool
    answer: str  # "accepted", "replayed", "refused 401", "failed 500", "dropped"
    at: float


class _Server(ThreadingHTTPServer):
    # Two bridges send up to 16 claims at once; the default listen backlog (5) would stall connections.
    request_queue_size = 64
    daemon_threads = True


class Insurer:
    """The insurer's claims endpoint: idempotent by `Idempotency-Key`, like a careful insurer.

    The first POST of a key that gets through is accepted (the claim is opened on their side); later
    POSTs of the key are answered 200 again without opening anything. Faults apply per key, to its
    first POSTs: `fail_first` answers 500, `drop_first` closes the connection without an answer
    (nothing accepted), `slow_first` accepts and then answers after `slow_s` (too late for the bridge).
    `hold()` keeps every POST waiting, unanswered, until `release()`; it is then processed as usual.
    """

    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.accepted: Counter[str] = Counter()
        self.first_bodies: dict[str, bytes] = {}
        self.overlaps: list[str] = []  # keys POSTed again while an earlier POST of theirs was in flight
        self.fail_first = 0
        self.drop_first = 0
        self.slow_first = 0
        self.slow_s = 0.0
        self.delay_s = 0.0  # every answer waits this long (widens the window for concurrent duplicates)
        self._seen: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._open = threading.Event()
        self._open.set()
        self.waiting = 0  # POSTs held by `hold()` right now
        self._lock = threading.Lock()
        insurer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                insurer._handle(self, body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self._server.serve_forever, name="insurer", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/fnol"

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def requests_for(self, key: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.key == key]

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        key = handler.headers.get("Idempotency-Key")
        signature_ok = verify(self.secret, body, handler.headers.get("X-Vigil-Signature"))
        with self._lock:
            if self._in_flight[key]:
                self.overlaps.append(key)
            self._in_flight[key] += 1
            self.waiting += 1
        try:
            self._open.wait()
            with self._lock:
                self.waiting -= 1
            time.sleep(self.delay_s)
            answer, status = self._decide(key, body, signature_ok)
            with self._lock:
                self.received.append(Received(key, body, signature_ok, answer, time.monotonic()))
            if answer == "dropped":
                handler.close_connection = True
                return
            if answer == "accepted" and self._seen[key] <= self.slow_first:
                time.sleep(self.slow_s)
            self._answer(handler, status)
        finally:
            with self._lock:
                self._in_flight[key] -= 1

    def _decide(self, key: str | None, body: bytes, signature_ok: bool) -> tuple[str, int]:
        with self._lock:
            if not signature_ok or key is None:
                return "refused 401", 401
            self._seen[key] += 1
            seen = self._seen[key]
            if seen <= self.fail_first:
                return "failed 500", 500
            if seen <= self.drop_first:
                return "dropped", 0
            if self.accepted[key]:
                return "replayed", 200
            self.accepted[key] += 1
            self.first_bodies[key] = body
            return "accepted", 201

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int) -> None:
        text = b'{"error": "bad signature"}' if status == 401 else b"{}"
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(text)))
            handler.end_headers()
            handler.wfile.write(text)
        except OSError:
            pass  # the bridge gave up waiting (or was killed): the answer has nowhere to go

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


class BridgeProcess(ServiceChild):
    """The claims bridge (`python -m claims_bridge`) as a child process."""

    MODULE = "claims_bridge"


def bridge_env(database_url: str, *, webhook_url: str | None = None, secret: str = SECRET, kafka: str | None = None,
               **settings: float | str) -> dict[str, str]:
    """The environment of a test bridge: its database, the insurer, short clocks, and a Kafka nobody runs
    unless `kafka` is given. `settings` are `VIGIL_*` names without the prefix, e.g. CLAIMS_GIVE_UP_S=3."""
    env = os.environ.copy()
    env.update({
        "DATABASE_URL": database_url,
        "VIGIL_KAFKA_BOOTSTRAP": kafka or f"127.0.0.1:{free_port()}",
        "VIGIL_PUBLIC_URL": "https://vigil.example.org",
        "VIGIL_CLAIMS_METRICS_PORT": "0",
        "VIGIL_CLAIM_SETTLE_S": "0",
        "VIGIL_CLAIMS_TIMEOUT_S": "1",
        "VIGIL_CLAIMS_RETRY_MAX_S": "0.5",
        "VIGIL_LOG_LEVEL": "INFO",
    })
    env.pop("VIGIL_CLAIMS_WEBHOOK_URL", None)
    env.pop("VIGIL_CLAIMS_WEBHOOK_SECRET", None)
    if webhook_url is not None:
        env["VIGIL_CLAIMS_WEBHOOK_URL"] = webhook_url
        env["VIGIL_CLAIMS_WEBHOOK_SECRET"] = secret
    env.update({f"VIGIL_{name}": str(value) for name, value in settings.items()})
    return env


def clean(database_url: str) -> None:
    """Empty what the claims tests write, so each test sees only its own rows."""
    sql(database_url, "TRUNCATE incidents, claims, claim_deliveries, claim_delivery_attempts, claim_notices, "
                      "claim_tokens, tasks, outreach, alerts, readings, devices, members, care_managers CASCADE")


def add_member(database_url: str, member_id: str, *, line: str = "both", auto_claims: bool = False,
               urls: tuple[str, ...] = (), care_manager_id: str | None = None, policy: dict | None = None,
               birth_date: str = "1950-03-14", timezone: str = "Europe/Paris", name: str = "Anna Berger",
               address: str = "3 rue des Lilas, 69003 Lyon") -> str:
    sql(database_url, """
        INSERT INTO members (id, name, birth_date, phone, email, address, timezone, policy, care_manager_id,
                             consent, outreach_urls)
        VALUES (%s, %s, %s, '+33611223344', 'anna@example.org', %s, %s, %s, %s, %s, %s)""",
        (member_id, name, birth_date, address, timezone,
         Jsonb(policy if policy is not None else {"number": f"P-{member_id}", "line": line}), care_manager_id,
         Jsonb({"monitoring": True, "outreach": True, "auto_claims": auto_claims}), Jsonb(list(urls))))
    return member_id


def add_care_manager(database_url: str, cm_id: str, urls: tuple[str, ...] = ()) -> str:
    sql(database_url, "INSERT INTO care_managers (id, name, email, timezone, outreach_urls) "
        "VALUES (%s, 'Claire Martin', 'claire@example.org', 'Europe/Paris', %s)", (cm_id, Jsonb(list(urls))))
    return cm_id


def add_device(database_url: str, member_id: str, *, kind: str = "home", location: str | None = "kitchen",
               report_interval_s: int = 60, registered_at: datetime | None = None) -> str:
    device_id = f"dev-{member_id}"
    sql(database_url, "INSERT INTO devices (device_id, kind, member_id, location, report_interval_s, mqtt_username, "
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (device_id, kind, member_id, location, report_interval_s, f"u-{device_id}",
         registered_at or datetime.now(UTC) - timedelta(days=30)))
    return device_id


def add_alert(database_url: str, member_id: str, device_id: str, *, alert_type: str = "water_leak",
              triggered_at: datetime, cleared_at: datetime | None = None, severity: str = "high") -> str:
    """An alert row as the alert consumer leaves it (open, or cleared when `cleared_at` is given)."""
    id_ = alert_id(device_id, alert_type, int(triggered_at.timestamp() * 1000))
    sql(database_url, "INSERT INTO alerts (id, type, severity, status, member_id, device_id, triggered_at, cleared_at,"
        " evidence, history, opens_incident) VALUES (%s, %s, %s, 'open', %s, %s, %s, %s, %s, %s, true)",
        (id_, alert_type, severity, member_id, device_id, triggered_at, cleared_at, Jsonb({"readings": []}),
         Jsonb([{"at": triggered_at.isoformat(), "action": "raised"}])))
    return id_


def add_readings(database_url: str, device_id: str, *, start: datetime, count: int, every_s: float, metric: str,
                 value: float, first_seq: int = 1) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO readings (device_id, ts, metric, value, seq) VALUES (%s, %s, %s, %s, %s)",
                        [(device_id, start + timedelta(seconds=n * every_s), metric, value, first_seq + n)
                         for n in range(count)])


def incident_event(member_id: str, device_id: str, alert: str, *, started_at: datetime, detected_at: datetime,
                   kind: str = "water_damage", covered_by: str = "home", alert_type: str = "water_leak",
                   location: str | None = "kitchen") -> IncidentOpened:
    started_ms = int(started_at.timestamp() * 1000)
    return IncidentOpened(
        incident_id=incident_id(device_id, kind, started_ms), kind=kind, covered_by=covered_by, member_id=member_id,
        device_id=device_id, location=location, alert_id=alert, alert_type=alert_type, started_at_ms=started_ms,
        condition_met_at_ms=started_ms + 1_200_000, detected_at_ms=int(detected_at.timestamp() * 1000),
        evidence={"lasted_s": 1200.0, "readings": [{"ts": started_at.isoformat(), "value": 1}]},
    )


def store_incidents(database_url: str, events: list[IncidentOpened], *, settle_s: int = 0) -> list[str]:
    """Store incidents as the bridge's consumer does (same function, one transaction); the ids that were new."""

    async def run() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
            return await insert_incidents(conn, events, settle_s=settle_s)

    return asyncio.run(run())


def leak(database_url: str, member_id: str, *, minutes_ago: float = 40, lasted_min: float = 25,
         settle_s: int = 0, **member: Any) -> tuple[IncidentOpened, str]:
    """A member with a kitchen leak sensor that reported every minute, a leak `minutes_ago` that lasted
    `lasted_min` (its alert cleared), and its incident stored; the event and the claim's id to come."""
    add_member(database_url, member_id, **member)
    device = add_device(database_url, member_id)
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    add_readings(database_url, device, start=started - timedelta(minutes=30), count=30, every_s=60,
                 metric="water_leak", value=0)
    add_readings(database_url, device, start=started, count=int(lasted_min), every_s=60, metric="water_leak",
                 value=1, first_seq=100)
    ended = started + timedelta(minutes=lasted_min)
    alert = add_alert(database_url, member_id, device, triggered_at=started, cleared_at=ended)
    event = incident_event(member_id, device, alert, started_at=started, detected_at=started + timedelta(minutes=20))
    store_incidents(database_url, [event], settle_s=settle_s)
    return event, building.claim_id(event.incident_id)


def claim_row(database_url: str, claim_id: str) -> dict[str, Any] | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute("SELECT * FROM claims WHERE id = %s", (claim_id,))
        row = cur.fetchone()
        return dict(zip([c.name for c in cur.description], row, strict=True)) if row else None


def claim_status(database_url: str, claim_id: str) -> str | None:
    rows = sql(database_url, "SELECT status FROM claims WHERE id = %s", (claim_id,))
    return rows[0][0] if rows else None


def attempts(database_url: str, claim_id: str) -> list[tuple[int, int | None, str | None, str]]:
    """The claim's delivery attempts in order: (attempt, status code, error, outcome)."""
    return sql(database_url, "SELECT attempt, status_code, error, outcome FROM claim_delivery_attempts "
               "WHERE claim_id = %s ORDER BY id", (claim_id,))
