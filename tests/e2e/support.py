"""Helpers for tests that drive the real pipeline: processes, devices, publishers, waiting."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql
from psycopg.conninfo import make_conninfo

from vigil.settings import Settings, get_settings


def wait_for(check: Callable[[], Any], timeout_s: float, interval_s: float = 0.25, what: str = "condition"):
    """Poll until `check()` is truthy; fail the test with `what` when it never is."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message(device_id: str, seq: int, readings: list[tuple[datetime, str, float]], **extra) -> dict:
    return {"device_id": device_id, "seq": seq, "sent_at": iso(datetime.now(UTC)),
            "readings": [{"ts": iso(ts), "metric": m, "value": v} for ts, m, v in readings], **extra}


def now() -> datetime:
    return datetime.now(UTC)


def minutes_ago(n: float) -> datetime:
    return now() - timedelta(minutes=n)


def reset_test_stack() -> Settings:
    """Stop what an earlier run left behind, drop the test database, bring the stack up fresh."""
    from stack import manager

    settings = get_settings()
    assert "test" in str(settings.state_dir), "refusing to reset a non-test stack"
    manager.down(settings)
    shutil.rmtree(settings.state_dir / "logs", ignore_errors=True)
    with psycopg.connect(make_conninfo(settings.database_url, dbname="postgres"), autocommit=True) as conn:
        name = settings.database_name
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
    manager.up(settings)
    return settings


class ServiceProcess:
    """One Vigil service as a child process, with its log in the test state folder.

    Supervised as `vigil run` and the container runtime supervise it: a process that exits on its
    own (the stream worker's commit watch exits on purpose so that a restart reads again) is started
    again after a second, and the exit is kept in `unexpected_exits`. Tests that kill or stop a
    service say so first, so the supervisor leaves that one to them.
    """

    RESTART_PAUSE_S = 1.0

    def __init__(self, name: str, module: str, log_dir: Path) -> None:
        self.name, self.module = name, module
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.unexpected_exits: list[int] = []
        self._down_on_purpose = True
        self._lock = threading.Lock()
        self._watch: threading.Thread | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        with self._lock:
            self.proc = subprocess.Popen([sys.executable, "-m", self.module], stdout=log, stderr=subprocess.STDOUT,
                                         env=os.environ.copy())
            self._down_on_purpose = False
        if self._watch is None:
            self._watch = threading.Thread(target=self._supervise, name=f"supervise-{self.name}", daemon=True)
            self._watch.start()

    def _supervise(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                proc, on_purpose = self.proc, self._down_on_purpose
            if proc is None or on_purpose or proc.poll() is None:
                continue
            self.unexpected_exits.append(proc.returncode)
            time.sleep(self.RESTART_PAUSE_S)
            with self._lock:
                if self._down_on_purpose or self.proc is not proc:
                    continue
            self.start()

    def kill9(self) -> None:
        with self._lock:
            self._down_on_purpose = True
            assert self.proc is not None
            proc = self.proc
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        with self._lock:
            self._down_on_purpose = True
            proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class DeviceCredentials:
    device_id: str
    username: str
    password: str
    member_id: str


class Pipeline:
    """The started services plus an API client and a database handle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        log_dir = settings.state_dir / "logs"
        self.ingest = ServiceProcess("ingest", "ingest", log_dir)
        self.streams = ServiceProcess("streams", "streams", log_dir)
        self.api_service = ServiceProcess("api", "api", log_dir)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}",
                                headers={"Authorization": f"Bearer {settings.admin_token}"}, timeout=15)

    def start(self) -> None:
        from stack.process import port_open

        # A service left over from an interrupted run would answer in place of ours.
        for port in (self.settings.api_port, self.settings.ingest_metrics_port, self.settings.streams_metrics_port):
            assert not port_open("127.0.0.1", port), f"port {port} is taken: a stale Vigil process? (ss -ltnp)"
        for service in (self.api_service, self.ingest, self.streams):
            service.start()
        wait_for(self._api_up, 60, what="the API to answer")
        probe = self.register_device("wearable")
        with DevicePublisher(self.settings, probe) as pub:
            pub.publish(message(probe.device_id, 0, [(now(), "battery", 80)]))
        wait_for(lambda: self.stored_count(probe.device_id) == 1, 120, what="the probe message to be stored")

    def stop(self) -> None:
        for service in (self.ingest, self.streams, self.api_service):
            service.stop()
        self.api.close()

    def _api_up(self) -> bool:
        try:
            return self.api.get("/health").status_code in (200, 503)
        except httpx.TransportError:
            return False

    def register_member(self, line: str = "both") -> str:
        body = {
            "name": "Test Member", "birth_date": "1950-04-02", "phone": "+15550100", "email": "t@example.org",
            "address": "1 Test Street", "timezone": "Europe/Paris",
            "policy": {"number": f"POL-{uuid.uuid4().hex[:8]}", "line": line},
            "care_manager_id": "cm-1", "emergency_contacts": [{"name": "Kin", "phone": "+15550101",
                                                                "relation": "daughter"}],
            "consent": {"monitoring": True, "outreach": True, "auto_claims": False},
        }
        response = self.api.post("/api/v1/members", json=body)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def register_device(self, kind: str, member_id: str | None = None, location: str | None = None
                        ) -> DeviceCredentials:
        member_id = member_id or self.register_member()
        device_id = f"t-{kind[:2]}-{uuid.uuid4().hex[:10]}"
        body = {"device_id": device_id, "kind": kind, "member_id": member_id, "location": location,
                "report_interval_s": 60}
        response = self.api.post("/api/v1/devices", json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return DeviceCredentials(device_id, data["mqtt_username"], data["mqtt_password"], member_id)

    def db(self) -> psycopg.Connection:
        return psycopg.connect(self.settings.database_url, autocommit=True)

    def query(self, statement: str, *params) -> list[tuple]:
        with self.db() as conn:
            return conn.execute(statement, params).fetchall()

    def stored_count(self, device_id: str) -> int:
        return self.query("SELECT count(*) FROM messages WHERE device_id = %s", device_id)[0][0]

    def dead_letters(self, device_id: str) -> list[tuple[str, str]]:
        return self.query("SELECT reason, detail FROM dead_letters WHERE device_id = %s ORDER BY id", device_id)


class DevicePublisher:
    """A device's own MQTT v5 connection; records which messages the broker acknowledged."""

    def __init__(self, settings: Settings, creds: DeviceCredentials) -> None:
        self.creds = creds
        # The broker binds each login to one client id, its username.
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=creds.username,
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(creds.username, creds.password)
        self.client.max_inflight_messages_set(200)
        self.client.on_publish = self._on_publish
        self._host, self._port = settings.mqtt_host, settings.mqtt_port
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list]] = {}
        self.acked: set[int] = set()
        self.refused: dict[int, str] = {}
        self._seq_of_mid: dict[int, int] = {}

    def __enter__(self) -> DevicePublisher:
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect(self._host, self._port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(10), "device could not connect to MQTT"
        return self

    def __exit__(self, *exc) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties) -> None:
        with self._lock:
            seq = self._seq_of_mid.pop(mid, None)
            if seq is not None:
                if reason_code.is_failure:
                    self.refused[seq] = str(reason_code)
                else:
                    self.acked.add(seq)
            waiter = self._waiting.pop(mid, None)
        if waiter:
            waiter[1].append(reason_code)
            waiter[0].set()

    def publish_raw(self, payload: bytes, topic: str | None = None, seq: int | None = None, wait: bool = True):
        """Publish at QoS 1; with `wait`, return the PUBACK reason code."""
        topic = topic or f"devices/{self.creds.device_id}/telemetry"
        done, box = threading.Event(), []
        with self._lock:
            info = self.client.publish(topic, payload, qos=1)
            if seq is not None:
                self._seq_of_mid[info.mid] = seq
            if wait:
                self._waiting[info.mid] = (done, box)
        if not wait:
            return None
        assert done.wait(15), "no PUBACK within 15 s"
        return box[0]

    def publish(self, body: dict, topic: str | None = None, wait: bool = True):
        return self.publish_raw(json.dumps(body).encode(), topic, body.get("seq"), wait)


@dataclass
class SteadyLoad:
    """Publishes numbered messages from a device at a fixed rate in a background thread."""

    publisher: DevicePublisher
    rate_per_s: float
    readings_per_message: int = 3
    next_seq: int = 1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SteadyLoad:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = 1 / self.rate_per_s
        device_id = self.publisher.creds.device_id
        while not self._stop.is_set():
            stamp = now()
            readings = [(stamp - timedelta(milliseconds=i), "temperature", 20.0 + i % 5)
                        for i in range(self.readings_per_message)]
            self.publisher.publish(message(device_id, self.next_seq, readings), wait=False)
            self.next_seq += 1
            time.sleep(interval)

    def stop(self) -> int:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)
        return self.next_seq - 1
