"""The load generator: MQTT publishers in their own processes, and payloads cheap enough to make fast.

Each publisher is a process (one paho client, one gateway login) so several of them are not held
to one core by the GIL. A publisher keeps a bounded window of unacknowledged QoS 1 messages, so a
message's `sent_at` is stamped when it really goes out rather than when it joined a client queue.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from vigil.broker_accounts import telemetry_topic

# What a home hub reports in one sample, in the order the 10-reading messages use.
HOME_SAMPLE: tuple[tuple[str, int | float], ...] = (
    ("temperature", 21.5), ("humidity", 45), ("battery", 90), ("smoke", 0), ("co_ppm", 1.5),
    ("gas_lel", 0), ("water_leak", 0), ("arc_events", 0), ("door_open", 0), ("motion", 1),
)
CONNECT_TIMEOUT_S = 15
ACK_TIMEOUT_S = 60
START_TIMEOUT_S = 60
# How far ahead of its schedule a paced publisher may get before it sleeps (bursts of a few messages).
PACE_AHEAD_S = 0.005


def rfc3339_ms(epoch_s: float) -> str:
    """A UTC instant with milliseconds and a `Z`, as devices write it."""
    whole = int(epoch_s)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((epoch_s - whole) * 1000):03d}Z"


def encode(device_id: str, seq: int, sent_at: float, readings: Sequence[tuple[float, str, int | float]]) -> bytes:
    """One telemetry payload with readings given as (epoch seconds, metric, value)."""
    return json.dumps({"device_id": device_id, "seq": seq, "sent_at": rfc3339_ms(sent_at),
                       "readings": [{"ts": rfc3339_ms(ts), "metric": m, "value": v} for ts, m, v in readings]},
                      separators=(",", ":")).encode()


class PayloadMaker:
    """Builds payloads from a template: readings are stamped with the message's own `sent_at`."""

    def __init__(self, readings: int) -> None:
        if not 1 <= readings <= len(HOME_SAMPLE):
            raise ValueError(f"readings must be 1 to {len(HOME_SAMPLE)}, not {readings}")
        # \x00 marks where the time stamp goes; it cannot occur in the JSON otherwise.
        self._readings = ",".join(f'{{"ts":"\x00","metric":"{m}","value":{v}}}' for m, v in HOME_SAMPLE[:readings])
        self._second = -1
        self._prefix = ""

    def _stamp(self, now: float) -> str:
        whole = int(now)
        if whole != self._second:
            self._second = whole
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return f"{self._prefix}.{int((now - whole) * 1000):03d}Z"

    def __call__(self, device_id: str, seq: int, now: float) -> bytes:
        stamp = self._stamp(now)
        readings = self._readings.replace("\x00", stamp)
        return f'{{"device_id":"{device_id}","seq":{seq},"sent_at":"{stamp}","readings":[{readings}]}}'.encode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Login:
    """An MQTT login and the devices it may publish for."""

    client_id: str
    username: str
    password: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishJob:
    """What one publisher process sends: `messages` as fast as the window allows, or at `rate_per_s`.

    Messages go round-robin over the login's devices; the n-th message of a device has seq
    `first_seq + n`. With `duration_s` the job stops after that long instead of after `messages`.
    """

    host: str
    port: int
    login: Login
    readings: int
    first_seq: int
    messages: int = 0
    duration_s: float = 0.0
    rate_per_s: float | None = None
    window: int = 200


@dataclass(frozen=True, slots=True)
class PublishResult:
    published: int = 0
    acked: int = 0
    refused: int = 0
    first_publish: float = 0.0
    last_publish: float = 0.0
    last_ack: float = 0.0
    cpu_s: float = 0.0
    error: str | None = None


@dataclass(slots=True)
class _Acks:
    window: threading.BoundedSemaphore
    acked: int = 0
    refused: int = 0
    last: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


def connect(host: str, port: int, login: Login, *, window: int, on_publish=None) -> mqtt.Client:
    """A started paho client logged in as `login`; raises RuntimeError when the broker refuses it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=login.client_id,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.username_pw_set(login.username, login.password)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    answered = threading.Event()
    outcome: list[str] = []

    def on_connect(_c, _u, _flags, reason, _props) -> None:
        outcome.append(str(reason) if reason.is_failure else "")
        answered.set()

    client.on_connect = on_connect
    if on_publish is not None:
        client.on_publish = on_publish
    client.connect(host, port, keepalive=60, clean_start=True)
    client.loop_start()
    if not answered.wait(CONNECT_TIMEOUT_S) or outcome[0]:
        client.loop_stop()
        raise RuntimeError(f"the broker at {host}:{port} did not accept {login.username}: "
                           f"{outcome[0] if outcome else 'no answer'}")
    return client


def _run(job: PublishJob, signal_ready, go) -> PublishResult:
    acks = _Acks(threading.BoundedSemaphore(job.window))

    def on_publish(_c, _u, _mid, reason, _props) -> None:
        with acks.lock:
            if reason.is_failure:
                acks.refused += 1
            else:
                acks.acked += 1
            acks.last = time.time()
        acks.window.release()

    client = connect(job.host, job.port, job.login, window=job.window, on_publish=on_publish)
    make = PayloadMaker(job.readings)
    devices = job.login.device_ids
    topics = [telemetry_topic(d) for d in devices]
    signal_ready(None)
    if not go.wait(START_TIMEOUT_S):
        raise RuntimeError("the start signal never came")
    cpu_before = _cpu_s()
    published, first, last = 0, 0.0, 0.0
    started = time.monotonic()
    try:
        while True:
            if job.duration_s:
                if time.monotonic() - started >= job.duration_s:
                    break
            elif published >= job.messages:
                break
            if job.rate_per_s:
                # Sleep only once a few ms ahead: a sleep per message cost the generator three times
                # the CPU per message at half load than at full speed, taken from the pipeline.
                delay = started + published / job.rate_per_s - time.monotonic()
                if delay > PACE_AHEAD_S:
                    time.sleep(delay)
            if not acks.window.acquire(timeout=ACK_TIMEOUT_S):
                raise RuntimeError(f"the broker acknowledged nothing for {ACK_TIMEOUT_S} s")
            index = published % len(devices)
            now = time.time()
            info = client.publish(topics[index], make(devices[index], job.first_seq + published // len(devices), now),
                                  qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"paho refused a message: {mqtt.error_string(info.rc)}")
            first = first or now
            last = now
            published += 1
        for _ in range(job.window):  # every slot back: everything published was answered
            if not acks.window.acquire(timeout=ACK_TIMEOUT_S):
                break
    finally:
        client.disconnect()
        client.loop_stop()
    return PublishResult(published=published, acked=acks.acked, refused=acks.refused, first_publish=first,
                         last_publish=last, last_ack=acks.last, cpu_s=_cpu_s() - cpu_before)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def publish_job(job: PublishJob, ready, go, results) -> None:
    """A publisher process's body: connect, say so on `ready`, wait for `go`, publish, report on `results`."""
    signalled = []

    def signal_ready(failure: str | None) -> None:
        signalled.append(True)
        ready.put(failure)

    try:
        results.put(_run(job, signal_ready, go))
    except Exception as e:  # reported to the parent, which owns the output
        if not signalled:
            ready.put(str(e))
        results.put(PublishResult(error=f"{job.login.username}: {e}"))


class Publishers:
    """Publisher processes started together, released at once, and collected."""

    def __init__(self, jobs: Sequence[PublishJob]) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._jobs = list(jobs)
        self._ready = self._context.Queue()
        self._results = self._context.Queue()
        self._go = self._context.Event()
        self._processes: list = []
        self.pids: list[int] = []

    def start(self) -> None:
        """Start every publisher and wait until each is connected (or failed)."""
        for job in self._jobs:
            process = self._context.Process(target=publish_job, args=(job, self._ready, self._go, self._results),
                                            daemon=True)
            process.start()
            self._processes.append(process)
        self.pids = [p.pid for p in self._processes]
        for _ in self._jobs:
            failure = self._ready.get(timeout=START_TIMEOUT_S)
            if failure:
                self.stop()
                raise RuntimeError(f"a publisher could not start: {failure}")

    def go(self) -> float:
        """Release every publisher; returns the wall time it was given."""
        now = time.time()
        self._go.set()
        return now

    def results(self, timeout_s: float) -> list[PublishResult]:
        """Wait for every publisher's result."""
        collected = [self._results.get(timeout=timeout_s) for _ in self._jobs]
        for process in self._processes:
            process.join(10)
        errors = [r.error for r in collected if r.error]
        if errors:
            raise RuntimeError("; ".join(errors))
        return collected

    def stop(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


def split(device_ids: Sequence[str], parts: int) -> list[tuple[str, ...]]:
    """The devices dealt into `parts` nearly equal groups, none empty."""
    parts = max(1, min(parts, len(device_ids)))
    return [tuple(device_ids[i::parts]) for i in range(parts)]


def share(total: int, parts: int) -> list[int]:
    """`total` split into `parts` whole numbers that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
