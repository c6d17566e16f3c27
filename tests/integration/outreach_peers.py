"""Real peers for the outreach tests: an HTTP receiver for Apprise `json://`, an SMTP server (aiosmtpd)
for `mailto://`, scheduler processes, and the rows (members, care managers, alerts) they work on."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import psycopg
from aiosmtpd.controller import Controller
from psycopg.types.json import Jsonb

from alerts.actions import act, resolve_by_reply_token
from alerts.store import apply_alert_changes
from vigil.alerting.ladder import parse_ladder
from vigil.alerting.lifecycle import Command
from vigil.events import AlertChanged, alert_id

WAIT_S = 20
# As the tachycardia rule records it: minute means over its window, steps (the member was at rest).
TACHYCARDIA_EVIDENCE = {"minutes": [{"mean": 146}, {"mean": 150}], "steps": 0, "threshold_bpm": 120}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition", interval_s: float = 0.05):
    """Poll until `check()` is truthy and return it; fail naming `what` when it never is."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@dataclass(frozen=True, slots=True)
class Arrival:
    """One POST that reached the receiver: its path (who), the Apprise JSON, and when (wall clock)."""

    path: str
    title: str
    message: str
    at: datetime


class JsonReceiver:
    """A threaded HTTP server that Apprise `json://` URLs post to; `fail(path, n)` answers 500 n times."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.refused: list[str] = []
        self._failures: dict[str, int] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._answer(self.path, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="json-receiver", daemon=True).start()

    def _answer(self, path: str, body: bytes) -> int:
        at = datetime.now(UTC)
        with self._lock:
            if self._failures.get(path, 0) > 0:
                self._failures[path] -= 1
                self.refused.append(path)
                return 500
            payload = json.loads(body)
            self.arrivals.append(Arrival(path, payload.get("title", ""), payload.get("message", ""), at))
        return 200

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self._server.server_address[1]}/{path.lstrip('/')}"

    def fail(self, path: str, times: int) -> None:
        with self._lock:
            self._failures["/" + path.lstrip("/")] = times

    def at(self, path: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.path == "/" + path.lstrip("/")]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class SmtpInbox:
    """A real SMTP server (aiosmtpd) on loopback; `messages` are the mails it accepted."""

    port: int = field(default_factory=free_port)
    messages: list[tuple[list[str], EmailMessage, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        inbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope) -> str:
                parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
                inbox.messages.append((list(envelope.rcpt_tos), parsed, datetime.now(UTC)))
                return "250 Message accepted for delivery"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def url(self, to: str) -> str:
        """Apprise's form for a plain local SMTP server: host and port, the recipient, a sender, no TLS."""
        return f"mailto://127.0.0.1:{self.port}/{to}?from=vigil@example.org&mode=insecure&format=text"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for rcpts, message, _ in self.messages if address in rcpts]

    def close(self) -> None:
        self._controller.stop()


class ServiceChild:
    """`python -m <MODULE>` as a real child process with its own environment and log file."""

    MODULE = ""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name, self.env = name, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        self.proc = subprocess.Popen([sys.executable, "-m", self.MODULE], stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env)
        log.close()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit status (None if never started)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc is not None else None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class SchedulerProcess(ServiceChild):
    """The scheduler (`python -m scheduler`) as a child process."""

    MODULE = "scheduler"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def is_leader(self) -> bool:
        return f"is the leader (pid {self.pid})" in self.log_text()


def scheduler_env(database_url: str, state_dir: Path, *, escalation: dict | None = None, group_interval_s: int = 120,
                  repeat_s: int = 14_400, tip_delay_s: int = 0) -> dict[str, str]:
    """The environment of a test scheduler: its database, a ladder, and a Kafka nobody listens on."""
    env = os.environ.copy()
    env.update({
        "DATABASE_URL": database_url,
        "VIGIL_STATE_DIR": str(state_dir),
        # device_offline finds no live pipeline in these databases, so it never publishes.
        "VIGIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "VIGIL_GROUP_INTERVAL_S": str(group_interval_s),
        "VIGIL_REPEAT_S": str(repeat_s),
        # Tips at once, so that a test sees them (the default waits an hour after the resolution).
        "VIGIL_TIP_DELAY_S": str(tip_delay_s),
        "VIGIL_PUBLIC_URL": "https://vigil.example.org",
        "VIGIL_LOG_LEVEL": "INFO",
    })
    if escalation is not None:
        env["VIGIL_ESCALATION"] = json.dumps(escalation)
    else:
        env.pop("VIGIL_ESCALATION", None)
    return env


def sql(database_url: str, query: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def add_care_manager(database_url: str, cm_id: str, urls: Sequence[str], *, name: str = "Claire Martin",
                     timezone: str = "Europe/Paris") -> str:
    sql(database_url, "INSERT INTO care_managers (id, name, email, phone, timezone, outreach_urls) "
        "VALUES (%s, %s, %s, %s, %s, %s)", (cm_id, name, "claire@example.org", "+33100000000", timezone, Jsonb(urls)))
    return cm_id


def add_member(database_url: str, member_id: str, *, urls: Sequence[str] = (), care_manager_id: str | None = None,
               contacts: Sequence[dict] = (), consent_outreach: bool = True, quiet_hours: dict | None = None,
               contact_by_call: bool = False, timezone: str = "Europe/Paris", name: str = "Anna Berger") -> str:
    sql(database_url, """
        INSERT INTO members (id, name, birth_date, phone, email, address, timezone, policy, care_manager_id,
                             emergency_contacts, consent, outreach_urls, quiet_hours, contact_by_call)
        VALUES (%s, %s, '1944-05-01', '+33611223344', 'anna@example.org', '3 rue des Lilas, Lyon', %s, %s, %s,
                %s, %s, %s, %s, %s)""",
        (member_id, name, timezone, Jsonb({"number": f"P-{member_id}", "line": "both"}), care_manager_id,
         Jsonb(list(contacts)), Jsonb({"monitoring": True, "outreach": consent_outreach, "auto_claims": False}),
         Jsonb(list(urls)), Jsonb(quiet_hours) if quiet_hours else None, contact_by_call))
    sql(database_url, "INSERT INTO devices (device_id, kind, member_id, location, mqtt_username) "
        "VALUES (%s, 'wearable', %s, 'the kitchen', %s)", (f"dev-{member_id}", member_id, f"u-{member_id}"))
    return member_id


def alert_event(member_id: str, change: str, *, alert_type: str = "tachycardia", severity: str = "critical",
                triggered_ms: int, opens_incident: bool = False, evidence: dict | None = None) -> AlertChanged:
    device_id = f"dev-{member_id}"
    now_ms = int(time.time() * 1000)
    return AlertChanged(
        change=change, alert_id=alert_id(device_id, alert_type, triggered_ms), type=alert_type, severity=severity,
        member_id=member_id, device_id=device_id, triggered_at_ms=triggered_ms, detected_at_ms=now_ms,
        cleared_at_ms=now_ms if change == "cleared" else None, opens_incident=opens_incident,
        evidence=evidence if evidence is not None else TACHYCARDIA_EVIDENCE,
    )


def apply_events(database_url: str, events: Sequence[AlertChanged], escalation: dict | None = None) -> list[str]:
    """Store alert events as the alerts consumer does (same function, same transaction), at the wall clock."""
    ladder = parse_ladder(json.dumps(escalation) if escalation is not None else None)

    async def run() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await apply_alert_changes(conn, events, datetime.now(UTC), ladder=ladder)

    return asyncio.run(run())


def raise_alert(database_url: str, member_id: str, *, escalation: dict | None = None, **event: Any) -> AlertChanged:
    """Raise an alert for the member's device now; the event (its `alert_id`, and the base of a later clear)."""
    raised = alert_event(member_id, "raised", triggered_ms=int(time.time() * 1000) - 1000, **event)
    assert apply_events(database_url, [raised], escalation) == ["raised"]
    return raised


def clear_alert(database_url: str, raised: AlertChanged) -> None:
    now_ms = int(time.time() * 1000)
    cleared = raised.model_copy(update={"change": "cleared", "cleared_at_ms": now_ms, "detected_at_ms": now_ms})
    assert apply_events(database_url, [cleared]) == ["cleared"]


def act_now(database_url: str, alert_id: str, command: Command, escalation: dict | None = None) -> dict[str, Any]:
    """Apply a care manager's command as the API does (`alerts.actions.act`)."""
    ladder = parse_ladder(json.dumps(escalation) if escalation is not None else None)

    async def run() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await act(conn, alert_id, command, datetime.now(UTC), ladder=ladder)

    return asyncio.run(run())


def reply_ok(database_url: str, token: str) -> dict[str, Any]:
    """The member's "I'm OK" through the reply link's token, as `POST /r/{token}` does."""

    async def run() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await resolve_by_reply_token(conn, token, datetime.now(UTC))

    return asyncio.run(run())
