"""Running the labelled scenarios through the live pipeline: register, publish, wait, read the alerts back.

Each scenario gets its own member and device, registered through the API, and publishes with the
device's own credentials through the real broker. Replayed scenarios are placed in the recent past
and sent as fast as the broker acknowledges them, several devices at a time; live ones play in real
time beside them. The alerts are read from the API once every replayed message is stored and a
settle time has passed (a live scenario's, when its observation time is up).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from simulators.evaluation.publisher import AckingPublisher
from simulators.evaluation.scoring import Observation, SeenAlert
from simulators.fleet import api_client
from simulators.labelled.messages import PlannedMessage, carrying, delivery_order, plan_messages
from simulators.labelled.model import InOrder, Scenario
from simulators.provisioning import ProvisioningError
from simulators.publishing import PublishError
from vigil.settings import Settings

log = logging.getLogger(__name__)

CARE_MANAGER = "cm-eval"
_HEALTH_TIMEOUT_S = 90.0
_PROBE_TIMEOUT_S = 120.0
_HTTP_WORKERS = 8
# The stream worker judges what arrived within about 0.1 s as one batch. A disordered or redelivered
# delivery is spaced well beyond that, so each message is judged on its own, as it is when a device's
# messages are 30 s apart; a batch holding the whole block would put it back in order for free.
DISORDER_GAP_S = 0.5

Progress = Callable[[str], None]


class EvaluationError(RuntimeError):
    """The pipeline could not be started or reached, so nothing can be measured."""


@dataclass(frozen=True, slots=True)
class Device:
    """A scenario's registered device and the login it publishes with."""

    scenario: Scenario
    device_id: str
    member_id: str
    username: str
    password: str


@dataclass(slots=True)
class Played:
    """What publishing one scenario did: its placement, its messages and the broker's answers."""

    device: Device
    start: datetime
    messages: list[PlannedMessage]
    order: list[int]
    acked_at: dict[int, float] = field(default_factory=dict)  # message index -> first acknowledgement
    problems: list[str] = field(default_factory=list)
    alerts: list[SeenAlert] = field(default_factory=list)

    @property
    def readings(self) -> int:
        return sum(len(self.messages[i].payload["readings"]) for i in self.order)

    def completed_at(self) -> tuple[float | None, ...]:
        """Per label, when its completing reading was acknowledged, plus the label's wall-clock delay."""
        moments: list[float | None] = []
        for label in self.device.scenario.expected:
            carriers = carrying(self.messages, label.first_s, label.last_s)
            acks = [self.acked_at[i] for i in carriers if i in self.acked_at]
            whole = bool(carriers) and len(acks) == len(carriers)
            moments.append(max(acks) + label.delay_s if whole else None)
        return tuple(moments)

    def observation(self) -> Observation:
        scenario = self.device.scenario
        return Observation(scenario=scenario.name, role=scenario.role, rules=scenario.rules,
                           expected=scenario.expected, start=self.start, alerts=tuple(self.alerts),
                           completed_at=self.completed_at(), problems=tuple(self.problems))


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything a run produced, for scoring and for the JSON report."""

    run_id: str
    played: tuple[Played, ...]
    started_at: datetime
    elapsed_s: float
    problems: tuple[str, ...] = ()

    @property
    def observations(self) -> list[Observation]:
        return [p.observation() for p in self.played]


# -- the pipeline -----------------------------------------------------------------------------------


def _health(api_url: str) -> int | None:
    try:
        return httpx.get(f"{api_url}/health", timeout=2).status_code
    except httpx.TransportError:
        return None


def _wait_healthy(api_url: str, timeout_s: float = _HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _health(api_url) == 200:
            return
        time.sleep(0.5)
    raise EvaluationError(f"the API at {api_url} did not report healthy within {timeout_s:.0f} s")


@contextlib.contextmanager
def live_pipeline(settings: Settings, progress: Progress = lambda _: None) -> Iterator[bool]:
    """Use the pipeline answering at the API port, or bring the stack up and run every service; yields
    whether this call started the services (and so stops them on exit)."""
    from stack import manager
    from stack.process import StackError
    from vigil.runner import SERVICES, Supervisor

    api_url = f"http://127.0.0.1:{settings.api_port}"
    if _health(api_url) is not None:
        progress(f"using the pipeline already running at {api_url}")
        _wait_healthy(api_url)
        yield False
        return
    progress("bringing the stack up")
    try:
        manager.up(settings)
    except StackError as e:
        raise EvaluationError(f"stack up failed: {e}") from e
    supervisor = Supervisor(list(SERVICES), log_dir=settings.state_dir / "logs")
    supervisor.start()
    # A service that dies (a metrics port briefly taken, say) is restarted rather than silently missing.
    watcher = threading.Thread(target=supervisor.watch, name="eval-supervisor", daemon=True)
    watcher.start()
    try:
        progress(f"starting {', '.join(SERVICES)}; logs in {settings.state_dir / 'logs'}")
        _wait_healthy(api_url)
        yield True
    finally:
        progress("stopping the services")
        supervisor.stop()
        watcher.join(timeout=60)
        supervisor.stop()  # again, for a child the watcher restarted while the first stop was under way


def admin_token(settings: Settings) -> str:
    """VIGIL_ADMIN_TOKEN, or a fresh admin token issued in the database."""
    from vigil.tokens import issue_token

    return settings.admin_token or issue_token(settings.database_url, "admin", None)


# -- registration -----------------------------------------------------------------------------------


def _created(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 201:
        raise ProvisioningError(f"creating {what} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def _register(http: httpx.Client, scenario: Scenario, device_id: str) -> Device:
    line = "health" if scenario.kind == "wearable" else "home"
    member = _created(http.post("/api/v1/members", json={
        "name": f"Eval {scenario.name}", "timezone": "UTC", "policy": {"number": f"EVAL-{device_id}", "line": line},
        "care_manager_id": CARE_MANAGER, "consent": {"monitoring": True, "outreach": False, "auto_claims": False},
    }), f"the member for {scenario.name}")
    device = _created(http.post("/api/v1/devices", json={
        "device_id": device_id, "kind": scenario.kind, "member_id": member["id"],
        "location": "wrist" if scenario.kind == "wearable" else "kitchen",
        "report_interval_s": scenario.report_interval_s,
    }), f"device {device_id}")
    return Device(scenario, device_id, member["id"], device["mqtt_username"], device["mqtt_password"])


def register(http: httpx.Client, scenarios: list[Scenario], run_id: str) -> list[Device]:
    """A member and a device per scenario, through the API as a partner would."""
    with ThreadPoolExecutor(_HTTP_WORKERS) as pool:
        return list(pool.map(lambda s: _register(http, s, f"ev-{run_id}-{s.name}"), scenarios))


# -- publishing -------------------------------------------------------------------------------------


def _publish(played: Played, settings: Settings, pace: Callable[[PlannedMessage], None]) -> None:
    device = played.device
    topic = f"devices/{device.device_id}/telemetry"
    refused: dict[str, int] = {}
    unrouted = unanswered = 0
    try:
        with AckingPublisher(settings.mqtt_host, settings.mqtt_port, device.username, device.password) as link:
            for index in played.order:
                message = played.messages[index]
                pace(message)
                ack = link.publish(topic, message.encode())
                if ack is None:
                    unanswered += 1
                elif not ack.accepted:
                    refused[ack.reason] = refused.get(ack.reason, 0) + 1
                else:
                    played.acked_at.setdefault(index, ack.at)
                    unrouted += ack.unrouted
    except PublishError as e:
        played.problems.append(f"publishing stopped: {e}")
    if refused:
        played.problems.append("refused by the broker: " + ", ".join(f"{k} x{v}" for k, v in refused.items()))
    if unanswered:
        played.problems.append(f"{unanswered} message(s) never acknowledged")
    if unrouted:
        played.problems.append(f"{unrouted} message(s) had no subscriber (ingest not listening): lost")


def _plan(device: Device, seed: int) -> Played:
    now = datetime.now(UTC)
    start = device.scenario.start_for(now)
    messages = plan_messages(device.scenario, device_id=device.device_id, start=start, sent_at=now, seed=seed)
    return Played(device, start, messages, delivery_order(device.scenario, messages))


def replay(device: Device, settings: Settings, seed: int, gap_s: float = 0.0) -> Played:
    """Publish a replayed scenario's messages, each after the previous one's PUBACK and at least `gap_s`
    after the previous publish (`DISORDER_GAP_S` at least when the delivery is out of order)."""
    played = _plan(device, seed)
    if not isinstance(device.scenario.delivery, InOrder):
        gap_s = max(gap_s, DISORDER_GAP_S)
    last = [0.0]

    def pace(_: PlannedMessage) -> None:
        time.sleep(max(0.0, last[0] + gap_s - time.monotonic()))
        last[0] = time.monotonic()

    _publish(played, settings, pace if gap_s else lambda _: None)
    return played


def play_live(device: Device, settings: Settings, seed: int, http: httpx.Client) -> Played:
    """Publish a live scenario in real time, then read its alerts when its observation time is up."""
    played = _plan(device, seed)
    begin = played.start.timestamp()

    def pace(message: PlannedMessage) -> None:
        time.sleep(max(0.0, begin + message.offsets[-1] - time.time()))

    _publish(played, settings, pace)
    time.sleep(max(0.0, begin + device.scenario.observe_s - time.time()))
    played.alerts = fetch_alerts(http, device.device_id)
    return played


# -- reading back -----------------------------------------------------------------------------------


def stored_counts(settings: Settings, device_ids: list[str]) -> dict[str, int]:
    """Messages stored per device (each `(device_id, seq)` once)."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT device_id, count(*) FROM messages WHERE device_id = ANY(%s) GROUP BY device_id",
                            (device_ids,)).fetchall()
    return {device_id: count for device_id, count in rows}


def wait_stored(settings: Settings, played: list[Played], timeout_s: float, progress: Progress) -> dict[str, int]:
    """Wait until every acknowledged message is stored, or the timeout passes; the counts at the end."""
    wanted = {p.device.device_id: len({p.messages[i].payload["seq"] for i in p.acked_at}) for p in played}
    deadline = time.monotonic() + timeout_s
    while True:
        counts = stored_counts(settings, list(wanted))
        behind = {d: n for d, n in wanted.items() if counts.get(d, 0) < n}
        progress(f"stored {sum(min(counts.get(d, 0), n) for d, n in wanted.items())} of "
                 f"{sum(wanted.values())} messages")
        if not behind or time.monotonic() > deadline:
            break
        time.sleep(1)
    for p in played:
        want, got = wanted[p.device.device_id], counts.get(p.device.device_id, 0)
        if got < want:
            p.problems.append(f"only {got} of {want} acknowledged messages stored after {timeout_s:.0f} s")
    return counts


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def fetch_alerts(http: httpx.Client, device_id: str) -> list[SeenAlert]:
    """Every alert the API holds for the device, whatever its status."""
    response = http.get("/api/v1/alerts", params={"device_id": device_id, "limit": 1000})
    if response.status_code != 200:
        raise EvaluationError(f"GET /api/v1/alerts for {device_id} answered {response.status_code}: "
                              f"{response.text[:300]}")
    return [SeenAlert(type=a["type"], severity=a["severity"], triggered_at=_time(a["triggered_at"]),
                      raised_at=_time(a["raised_at"]), alert_id=a["id"]) for a in response.json()]


def warm_up(http: httpx.Client, settings: Settings, run_id: str, progress: Progress) -> None:
    """One message from a probe device, stored: ingest is subscribed and the stream worker consuming."""
    progress("checking the pipeline end to end with a probe message")
    member = _created(http.post("/api/v1/members", json={
        "name": "Eval probe", "policy": {"number": f"EVAL-{run_id}-probe", "line": "home"},
        "consent": {"monitoring": True, "outreach": False, "auto_claims": False}}), "the probe member")
    device_id = f"ev-{run_id}-probe"
    device = _created(http.post("/api/v1/devices", json={
        "device_id": device_id, "kind": "home", "member_id": member["id"], "report_interval_s": 3600}),
        "the probe device")
    now = datetime.now(UTC).replace(microsecond=0)
    payload = (f'{{"device_id":"{device_id}","seq":1,"sent_at":"{now.isoformat()}",'
               f'"readings":[{{"ts":"{now.isoformat()}","metric":"battery","value":90}}]}}').encode()
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    with AckingPublisher(settings.mqtt_host, settings.mqtt_port, device["mqtt_username"],
                         device["mqtt_password"]) as link:
        while time.monotonic() < deadline:
            ack = link.publish(f"devices/{device_id}/telemetry", payload)
            # Unrouted: ingest has not subscribed yet; the same seq again is harmless once it has.
            if ack is not None and ack.accepted and not ack.unrouted:
                break
            time.sleep(1)
    while time.monotonic() < deadline:
        if stored_counts(settings, [device_id]).get(device_id):
            return
        time.sleep(0.5)
    raise EvaluationError(f"a probe message was not stored within {_PROBE_TIMEOUT_S:.0f} s: is ingest running?")


# -- the whole run ----------------------------------------------------------------------------------


def run(scenarios: list[Scenario], settings: Settings, token: str, *, parallel: int = 8, settle_s: float = 15.0,
        seed: int = 0, gap_s: float = 0.0, progress: Progress = lambda _: None) -> RunResult:
    """Register, publish, wait, read back: the observations `scoring.score` needs.

    `gap_s` spaces each replayed device's messages (0: as fast as the broker acknowledges them).
    """
    run_id = uuid.uuid4().hex[:6]
    started_at, began = datetime.now(UTC), time.monotonic()
    api_url = f"http://127.0.0.1:{settings.api_port}"
    with api_client(api_url, token) as http:
        warm_up(http, settings, run_id, progress)
        progress(f"registering {len(scenarios)} members and devices (run {run_id})")
        devices = register(http, scenarios, run_id)
        live = [d for d in devices if d.scenario.live]
        replayed = sorted((d for d in devices if not d.scenario.live), key=lambda d: -d.scenario.duration_s)
        live_results: list[Played] = []

        def play(device: Device) -> None:
            try:
                live_results.append(play_live(device, settings, seed, http))
            except Exception:
                log.exception("live scenario %s failed", device.scenario.name)

        live_threads = [threading.Thread(target=play, args=(d,), name=f"live-{d.scenario.name}", daemon=True)
                        for d in live]
        for thread in live_threads:
            thread.start()
        progress(f"publishing {len(replayed)} replayed scenarios, {parallel} at a time"
                 + (f", and {len(live)} live ones in real time" if live else ""))
        with ThreadPoolExecutor(max(1, parallel)) as pool:
            played = list(pool.map(lambda d: replay(d, settings, seed, gap_s), replayed))
        published = sum(len(p.order) for p in played)
        timeout_s = 120 + published / 100
        wait_stored(settings, played, timeout_s,
                    lambda text: progress(f"{text} ({time.monotonic() - began:.0f} s)"))
        progress(f"letting the rules settle for {settle_s:.0f} s")
        time.sleep(settle_s)
        for p in played:
            p.alerts = fetch_alerts(http, p.device.device_id)
        if live_threads:
            progress("waiting for the live scenarios' observation time")
        for thread in live_threads:
            thread.join()
    missing = {d.scenario.name for d in live} - {p.device.scenario.name for p in live_results}
    problems = tuple(f"live scenario {name} did not finish (see the log)" for name in sorted(missing))
    order = {s.name: i for i, s in enumerate(scenarios)}
    everything = sorted([*played, *live_results], key=lambda p: order[p.device.scenario.name])
    return RunResult(run_id=run_id, played=tuple(everything), started_at=started_at,
                     elapsed_s=time.monotonic() - began, problems=problems)
