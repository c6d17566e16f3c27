"""The whole pipeline under load: Vigil's services started, a fleet registered through the API, timed runs.

Times come from the database where the pipeline wrote them: `messages.sent_at` (stamped by the
publisher, in the payload), `received_at` (ingest), `stored_at` (the COPY's clock) and the alert's
`raised_at`. Publishers and services share the machine's clock.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg

from bench.load import Login, Publishers, PublishJob, PublishResult, connect, encode, share, split
from bench.procfs import PhaseCpu, alive
from bench.report import AlertLatency, Throughput, rate, summarize_latency
from simulators.inbox import Inbox
from stack.process import port_open
from vigil.runner import Supervisor
from vigil.settings import Settings

# The scheduler runs the ladder: the bench times outreach too.
SERVICES = ["ingest", "streams", "api", "scheduler"]
HEALTH_TIMEOUT_S = 120
PROBE_TIMEOUT_S = 120
# A stage that stores nothing new for this long has stopped: the run is reported as it stands.
STALL_S = 60
ALERT_WAIT_S = 60
LEAK_SPAN_S = 60  # the water_leak rule's span (docs/rules.md)
CARE_MANAGER = "bench"
_HTTP_WORKERS = 8
_RECOVERY_FAILED = "Error in recovery"
DEVICES_PER_MEMBER = 10


class BenchError(RuntimeError):
    """The pipeline could not be started, provisioned or measured; the message says what happened."""


@dataclass(frozen=True, slots=True)
class Fleet:
    """What the bench registered: gateways for the load devices, and one gateway for the leak devices."""

    prefix: str
    loads: tuple[Login, ...]
    leaks: Login
    idle_leaks: tuple[str, ...]
    loaded_leaks: tuple[str, ...]

    @property
    def load_pattern(self) -> str:
        return f"{self.prefix}-d%"


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Point this process's stdout and stderr at a file, so children started meanwhile log there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


class Pipeline:
    """Vigil's services as child processes, the API as an admin, and the database."""

    def __init__(self, settings: Settings, *, run_id: str, token: str, log_path: Path, workers: int = 1,
                 ingest: int = 1) -> None:
        self.settings = settings
        self.run_id = run_id
        self.prefix = f"bench-{run_id}"
        self.log_path = log_path
        # How many stream workers and ingest processes run, as `vigil run --workers --ingest` runs them.
        self.copies = {"streams": workers, "ingest": ingest}
        self._supervisor = Supervisor(SERVICES, copies=self.copies, settings=settings)
        self._started = False
        # Each leak sensor's member has a channel into this inbox, so the bench times outreach too.
        self.inbox = Inbox()
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}",
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)

    # -- processes ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the services with their output in the log file, and wait for the API's health to be up."""
        for port, what in ((self.settings.api_port, "VIGIL_API_PORT"),
                           (self.settings.ingest_metrics_port, "VIGIL_INGEST_METRICS_PORT")):
            if port and port_open("127.0.0.1", port):
                raise BenchError(f"something already listens on {what}={port}: Vigil's services seem to be "
                                 "running; stop them first, the bench starts its own")
        self.inbox.start()
        with _output_to(self.log_path):
            self._supervisor.start()
        self._started = True
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if self.api.get("/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise BenchError(f"the API did not report healthy within {HEALTH_TIMEOUT_S} s; see {self.log_path}")

    def _check_alive(self) -> None:
        for name, pid in self._supervisor.pids().items():
            if not alive(pid):
                raise BenchError(f"the {name} process exited; see {self.log_path}")

    def pids(self) -> dict[str, int]:
        """By child: `streams`, or `streams-1`, `streams-2`, ... when several run."""
        return self._supervisor.pids()

    def service_pids(self, service: str) -> list[int]:
        """Every copy of one service."""
        return self._supervisor.service_pids().get(service, [])

    def stop(self) -> None:
        if self._started:
            self._supervisor.stop()
            self.inbox.stop()
        self.api.close()

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.settings.database_url, autocommit=True)

    # -- registration --------------------------------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        response = self.api.post(path, json=body)
        if response.status_code != 201:
            raise BenchError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def _member(self, number: int, *, channel: str | None = None) -> str:
        """A member; with a `channel`, one who consents to outreach and is told through it."""
        member_id = f"{self.prefix}-m{number:03d}"
        self._post("/api/v1/members", {
            "id": member_id, "name": f"Bench Member {number}", "timezone": "UTC",
            "policy": {"number": f"BENCH-{self.run_id}-{number}".upper(), "line": "home"},
            "care_manager_id": CARE_MANAGER,
            "consent": {"monitoring": True, "outreach": channel is not None, "auto_claims": False},
            "outreach_urls": [channel] if channel else [],
        })
        return member_id

    def _device(self, device_id: str, member_id: str) -> None:
        # The longest report interval: the bench's devices fall silent for good once it ends.
        self._post("/api/v1/devices", {"device_id": device_id, "kind": "home", "member_id": member_id,
                                       "location": "kitchen", "report_interval_s": 86_400})

    def _gateway(self, gateway_id: str, device_ids: Sequence[str]) -> Login:
        answer = self._post("/api/v1/gateways", {"id": gateway_id, "name": "vigil bench",
                                                 "device_ids": list(device_ids)})
        return Login(client_id=answer["mqtt_username"], username=answer["mqtt_username"],
                     password=answer["mqtt_password"], device_ids=tuple(device_ids))

    def provision(self, *, devices: int, connections: int, leaks: int) -> Fleet:
        """Members, home devices and gateways through the API, ids prefixed `bench-<run>-`."""
        loads = [f"{self.prefix}-d{n:04d}" for n in range(devices)]
        idle = [f"{self.prefix}-leak-i{n:03d}" for n in range(leaks)]
        loaded = [f"{self.prefix}-leak-l{n:03d}" for n in range(leaks)]
        sensors = idle + loaded
        with ThreadPoolExecutor(_HTTP_WORKERS) as pool:
            members = list(pool.map(self._member, range(-(-len(loads) // DEVICES_PER_MEMBER))))
            list(pool.map(lambda i: self._device(loads[i], members[i // DEVICES_PER_MEMBER]), range(len(loads))))
            # A member of their own per leak sensor: alerts of one member would be grouped into one message.
            list(pool.map(lambda n: self._device(sensors[n], self._member(
                len(members) + n, channel=self.inbox.url(sensors[n]))), range(len(sensors))))
            groups = split(loads, connections)
            gateways = list(pool.map(lambda n: self._gateway(f"{self.prefix}-gw{n + 1}", groups[n]),
                                     range(len(groups))))
        leak_gateway = self._gateway(f"{self.prefix}-gw-leak", idle + loaded)
        return Fleet(prefix=self.prefix, loads=tuple(gateways), leaks=leak_gateway, idle_leaks=tuple(idle),
                     loaded_leaks=tuple(loaded))

    def probe(self, fleet: Fleet) -> float:
        """Publish one message and wait until it is stored; returns how long that took."""
        login = fleet.loads[0]
        device_id = login.device_ids[0]
        # Its login's own client id (the broker allows no other): no publisher has connected yet.
        client = connect(self.settings.mqtt_host, self.settings.mqtt_port, login, window=10)
        started = time.time()
        try:
            client.publish(f"devices/{device_id}/telemetry",
                           encode(device_id, 0, started, [(started, "battery", 80)]), qos=1).wait_for_publish(15)
        finally:
            client.disconnect()
            client.loop_stop()
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        with self.db() as conn:
            while time.monotonic() < deadline:
                self._check_alive()
                if conn.execute("SELECT 1 FROM messages WHERE device_id = %s AND seq = 0", (device_id,)).fetchone():
                    return time.time() - started
                self._check_recovery()
                time.sleep(0.25)
        raise BenchError(f"the probe message was not stored within {PROBE_TIMEOUT_S} s; see {self.log_path}")

    def _check_recovery(self) -> None:
        # Faust logs this for each changelog record it cannot apply; recovery then never completes,
        # so waiting longer cannot help.
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as log:
            if any(_RECOVERY_FAILED in line for line in log):
                raise BenchError(
                    f"the stream worker cannot rebuild its device-state table from the changelog ('{_RECOVERY_FAILED}' "
                    f"in {self.log_path}), so it never starts consuming. That happens when it starts against a Kafka "
                    "that already holds the changelog; with the Tansu `vigil stack` starts (memory storage), "
                    "`vigil stack down` empties it, then run the bench again")

    # -- runs ------------------------------------------------------------------------------------

    def paced_jobs(self, fleet: Fleet, *, readings: int, first_seq: int, messages: int = 0, duration_s: float = 0.0,
                   rate_per_s: float | None = None) -> list[PublishJob]:
        """One publisher per gateway connection: `messages` in all, or for `duration_s` at `rate_per_s` in all."""
        counts = share(messages, len(fleet.loads)) if messages else [0] * len(fleet.loads)
        per_connection = rate_per_s / len(fleet.loads) if rate_per_s else None
        return [PublishJob(host=self.settings.mqtt_host, port=self.settings.mqtt_port, login=login,
                           readings=readings, first_seq=first_seq, messages=count, duration_s=duration_s,
                           rate_per_s=per_connection) for login, count in zip(fleet.loads, counts, strict=True)]

    def throughput(self, fleet: Fleet, cpu: PhaseCpu, *, messages: int, readings: int, first_seq: int,
                   report_progress=lambda _stored, _expected: None) -> Throughput:
        """Publish `messages` as fast as the broker takes them, then wait until the database has them."""
        publishers = Publishers(self.paced_jobs(fleet, readings=readings, first_seq=first_seq, messages=messages))
        try:
            publishers.start()
            cpu.begin()
            publishers.go()
            results = publishers.results(timeout_s=messages / 100 + 300)
        finally:
            publishers.stop()
        cpu.add("load generator", sum(r.cpu_s for r in results))
        acked = sum(r.acked for r in results)
        self._wait_stored(fleet.load_pattern, first_seq, acked, report_progress)
        cpu.end()
        with self.db() as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM sent_at)::float8, extract(epoch FROM received_at)::float8, "
                "extract(epoch FROM stored_at)::float8, readings "
                "FROM messages WHERE device_id LIKE %s AND seq >= %s AND seq < %s",
                (fleet.load_pattern, first_seq, first_seq + _SEQ_SPAN)).fetchall()
        first = min(r.first_publish for r in results)
        first_sent = min((r[0] for r in rows), default=0.0)
        return Throughput(
            readings_per_message=readings, published=sum(r.published for r in results), acked=acked,
            stored=len(rows), readings_stored=sum(r[3] for r in rows),
            publish_s=max(r.last_ack for r in results) - first,
            received_s=max((r[1] for r in rows), default=first_sent) - first_sent,
            pipeline_s=max((r[2] for r in rows), default=first_sent) - first_sent,
            to_received=summarize_latency((received - sent) * 1000 for sent, received, _, _ in rows),
            latency=summarize_latency((stored - sent) * 1000 for sent, _, stored, _ in rows))

    def _wait_stored(self, pattern: str, first_seq: int, expected: int, report_progress) -> int:
        seen, since = -1, time.monotonic()
        with self.db() as conn:
            while True:
                stored = conn.execute("SELECT count(*) FROM messages WHERE device_id LIKE %s AND seq >= %s "
                                      "AND seq < %s", (pattern, first_seq, first_seq + _SEQ_SPAN)).fetchone()[0]
                report_progress(stored, expected)
                if stored >= expected:
                    return stored
                if stored != seen:
                    seen, since = stored, time.monotonic()
                elif time.monotonic() - since > STALL_S:
                    return stored
                self._check_alive()
                time.sleep(0.5)

    def alert_latency(self, fleet: Fleet, cpu: PhaseCpu, *, label: str, leaks: Sequence[str],
                      background_per_s: float, duration_s: float, first_seq: int) -> AlertLatency:
        """Complete a 60 s wet span on each leak device at a recorded time; time until each alert is raised.

        The first wet reading is stamped 70 s in the past and the completing one 10 s in the past,
        so the rule's event-time span is met without waiting a real minute.
        """
        publishers = None
        results: list[PublishResult] = []
        client = connect(self.settings.mqtt_host, self.settings.mqtt_port, fleet.leaks, window=len(leaks) * 2 + 10)
        try:
            if background_per_s:
                publishers = Publishers(self.paced_jobs(fleet, readings=1, first_seq=first_seq, duration_s=duration_s,
                                                   rate_per_s=background_per_s))
                publishers.start()
            cpu.begin()
            started = publishers.go() if publishers else time.time()
            if publishers:
                time.sleep(min(3.0, duration_s / 5))  # let the background load settle first
            origin = time.time()
            for device_id in leaks:
                _publish(client, device_id, 1, origin, [(origin - LEAK_SPAN_S - 10, "water_leak", 1)])
            time.sleep(2)
            # Spread the completing readings over the load, ending a little before it does.
            spread_s = max(0.0, started + duration_s - 3 - time.time()) if publishers else 0.25 * len(leaks)
            published_at: dict[str, float] = {}
            begin = time.time()
            for n, device_id in enumerate(leaks):
                delay = begin + n * spread_s / len(leaks) - time.time()
                if delay > 0:
                    time.sleep(delay)
                published_at[device_id] = time.time()
                _publish(client, device_id, 2, published_at[device_id], [(origin - 10, "water_leak", 1)])
            if publishers:
                results = publishers.results(timeout_s=duration_s + 120)
                cpu.add("load generator", sum(r.cpu_s for r in results))
            raised = self._wait_alerts(leaks)
            told = self._wait_told(leaks)
            cpu.end()
        finally:
            if publishers:
                publishers.stop()
            client.disconnect()
            client.loop_stop()
        with self.db() as conn:
            stamps = conn.execute(
                "SELECT device_id, extract(epoch FROM received_at)::float8, extract(epoch FROM stored_at)::float8 "
                "FROM messages WHERE device_id = ANY(%s) AND seq = 2", (list(leaks),)).fetchall()
        achieved = 0.0
        if results:
            span = max(r.last_publish for r in results) - min(r.first_publish for r in results)
            achieved = rate(sum(r.acked for r in results), span) or 0.0
        return AlertLatency(
            label=label, leaks=len(leaks), raised=len(raised), background_target_per_s=background_per_s,
            background_achieved_per_s=achieved,
            to_received=summarize_latency((received - published_at[d]) * 1000 for d, received, _ in stamps),
            to_stored=summarize_latency((stored - published_at[d]) * 1000 for d, _, stored in stamps),
            to_raised=summarize_latency((at - published_at[d]) * 1000 for d, at in raised.items()),
            told=len(told),
            to_member=summarize_latency((at - published_at[d]) * 1000 for d, at in told.items()),
            raised_to_member=summarize_latency((at - raised[d]) * 1000 for d, at in told.items() if d in raised))

    def _wait_told(self, leaks: Sequence[str]) -> dict[str, float]:
        """When each sensor's member was first sent a message (arrival at the inbox), as far as they came."""
        paths = {f"/{d}": d for d in leaks}
        deadline = time.monotonic() + ALERT_WAIT_S
        while True:
            told: dict[str, float] = {}
            for arrival in list(self.inbox.arrivals):
                device = paths.get(arrival.path)
                if device is not None and device not in told:
                    told[device] = arrival.at
            if len(told) >= len(leaks) or time.monotonic() > deadline:
                return told
            time.sleep(0.2)

    def _wait_alerts(self, leaks: Sequence[str]) -> dict[str, float]:
        deadline = time.monotonic() + ALERT_WAIT_S
        with self.db() as conn:
            while True:
                rows = conn.execute(
                    "SELECT device_id, extract(epoch FROM min(raised_at))::float8 FROM alerts "
                    "WHERE device_id = ANY(%s) AND type = 'water_leak' GROUP BY device_id", (list(leaks),)).fetchall()
                if len(rows) >= len(leaks) or time.monotonic() > deadline:
                    return dict(rows)
                time.sleep(0.2)

    def postgres_backends(self) -> list[int]:
        """Server processes serving this database's other sessions (the services')."""
        with contextlib.suppress(psycopg.Error), self.db() as conn:
            return [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()]
        return []


# Each run numbers its messages from its own block of sequence numbers, so runs over the same
# devices never collide on (device_id, seq) and each run's rows can be told apart.
_SEQ_SPAN = 10_000_000


def first_seq(run_number: int) -> int:
    return run_number * _SEQ_SPAN


def _publish(client: mqtt.Client, device_id: str, seq: int, sent_at: float,
             readings: Sequence[tuple[float, str, int]]) -> None:
    info = client.publish(f"devices/{device_id}/telemetry", encode(device_id, seq, sent_at, readings), qos=1)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        raise BenchError(f"could not publish for {device_id}: {mqtt.error_string(info.rc)}")


def new_run_id() -> str:
    return secrets.token_hex(3)
