"""`python -m bench.fleet_state`: the stream worker's detector state for a fleet of N devices (issue 9).

Half the fleet are wrist wearables sending a sample every 5 to 60 s, half home multi-sensors every 1
to 5 minutes, with the normal signals of `simulators.signals`. They are registered in PostgreSQL
(COPY, one member per wearable and home sensor) and their records go straight to `vigil.telemetry`,
keyed and partitioned as ingest does: this measures the stream worker, not ingest, so no MQTT.
Event time is compressed: each device's records cover the recent past, long enough for its
state to stop growing, and are sent as fast as the worker takes them. One real `python -m streams`
judges them all; then

- worker memory: its RSS with the fleet's states less its RSS idle just before, per device;
- changelog bytes per device: each device's latest value on the table's changelog (what a
  compacted changelog keeps), by kind, and everything the run wrote to it;
- recovery: the worker is stopped (SIGTERM) and started again, and timed until it has read its
  table back from the changelog and judged a new record of a known device, next to the time the
  same start took with an empty table;
- real time: the restarted worker then takes a minute of every device's next records at the pace
  they would come, and its RSS and changelog writes are read again.

A device's records are sent in event-time order (as MQTT and Kafka keep them: see
`vigil.rules.lateness`), device after device, so that the backlog costs each state a few changelog
writes, not one per message; the worker then holds only the few states it judged last as objects
(it keeps recently judged states so, the others as bytes), unlike under a real fleet. The
real-time minute after the restart, starting from the table alone, gives the realistic figures:
the worker's RSS with every device reporting at its own pace, and the changelog's steady load (one
write per message: the worker commits every second, and no device sends more often than every 5 s).

The records go to a Tansu of the run's own, started with `stack.kafka` and stopped at the end: the
stack's Tansu keeps every record it is sent in memory until it stops, gigabytes for a large fleet,
and its changelog would hold other runs' states for the restart to read. Readings are stored in the
stack's PostgreSQL; the run's rows (ids `bench-fleet-<run>-*`) are deleted again at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import psycopg
import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.table import Table

from bench.ceilings import TELEMETRY_TABLES, delete_devices_rows, vacuum_telemetry
from bench.procfs import TICKS_PER_S, alive, cpu_ticks, memory_kb
from simulators.devices import tidy
from simulators.scenarios import Kind
from simulators.signals import HomeSensor, WearableSignal
from stack import kafka, postgres
from stack.process import log_tail
from streams.device_states import stored
from vigil.logs import configure_logging
from vigil.rules import state_codec
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.lateness import DEFAULT_ALLOWED_LATENESS_MS
from vigil.rules.replay import plan
from vigil.rules.spec import Rule
from vigil.settings import Settings, get_settings
from vigil.telemetry import METRICS, TelemetryRecord
from vigil.topics import TELEMETRY

# streams/app.py: the Faust app's id, and its table of device states; Faust names the changelog
# `<app id>-<table>-changelog`. The worker's consumer group is the app id.
APP_ID = "vigil-streams"
CHANGELOG = f"{APP_ID}-device-state-changelog"
KINDS: tuple[Kind, ...] = ("wearable", "home")
INTERVALS_S: dict[Kind, tuple[int, int]] = {"wearable": (5, 60), "home": (60, 300)}
# Event time beyond a kind's longest minute window and the lateness allowance: a few more minutes
# judged, so that every aggregate the state keeps is full.
EXTRA_MINUTES = 5
SEED = 9
REAL_TIME_S = 60.0
# A device's message reaches ingest and Kafka this long after its sample.
SENT_AFTER_MS = 150
RECEIVED_AFTER_MS = 200
# The aim of issue 9, per device on average.
AIM_STATE_BYTES = 2048
PROBE_TIMEOUT_S = 300
# The worker's committed offsets have not moved for this long: it is stuck, and the run is void.
STALL_S = 180
# Time given to the worker after each phase before its RSS is read: the states it drops from memory
# when they have not been judged for a while, and the garbage of the last batches, are gone by then.
SETTLE_S = 15.0
STOP_TIMEOUT_S = 60
PROGRESS_EVERY_S = 10.0
# Faust logs this for a changelog record it cannot apply; recovery then never completes.
_RECOVERY_FAILED = "Error in recovery"
# The worker logs this once Faust has recovered its tables after a rebalance, its start's included
# (streams/device_states.py); Faust's own "Restore complete!" is below the worker's log level.
_RECOVERED = "tables recovered: judging resumes"
_quiet = logging.getLogger("bench.librdkafka")
_quiet.setLevel(logging.CRITICAL)
console = Console(width=max(shutil.get_terminal_size().columns, 110))


class FleetError(RuntimeError):
    """The run could not be carried out or measured; the message says what happened."""


# -- the fleet, without I/O ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FleetDevice:
    device_id: str
    member_id: str
    kind: Kind
    interval_s: int
    seed: int


def warm_up_minutes(kind: Kind, *, rules: Sequence[Rule] = DEFAULT_RULES, extra_minutes: int = EXTRA_MINUTES) -> int:
    """Event time after which a device of this kind's state no longer grows.

    The state keeps per-minute aggregates as far back as the longest minute window that reads them
    (CO's 60 minutes for a home sensor, heart rate's 10 for a wearable) and the readings of the
    lateness allowance; the other rules keep something only while their condition holds, which a
    normal signal never meets. A wearable reaches it 50 minutes before a home sensor, and sending it
    those minutes too would make a run about three times longer.
    """
    horizons = plan(tuple(rules)).horizons
    longest = max((horizons.get(name, 0) for name, spec in METRICS.items() if spec.source in (kind, "any")),
                  default=0)
    return longest + math.ceil(DEFAULT_ALLOWED_LATENESS_MS / 60_000) + extra_minutes


def plan_fleet(prefix: str, devices: int, *, seed: int = SEED) -> list[FleetDevice]:
    """Wearables and home sensors in turn, a member for each pair, intervals spread over the kind's range."""
    rng = random.Random(seed)
    fleet = []
    for n in range(devices):
        kind = KINDS[n % 2]
        low, high = INTERVALS_S[kind]
        fleet.append(FleetDevice(device_id=f"{prefix}-{kind[0]}{n:06d}", member_id=f"{prefix}-m{n // 2:06d}",
                                 kind=kind, interval_s=rng.randint(low, high), seed=rng.getrandbits(32)))
    return fleet


def device_records(device: FleetDevice, *, start_ms: int, since_ms: int, until_ms: int) -> Iterator[TelemetryRecord]:
    """The device's messages with event times in [since_ms, until_ms], one sample each, in order.

    Its samples lie on a grid from `start_ms` plus a phase of its own, numbered from 1 there (the
    seq), so that records asked for later carry on where earlier ones stopped.
    """
    rng = random.Random(device.seed)
    sensor = WearableSignal.create(rng) if device.kind == "wearable" else HomeSensor.create(rng)
    step_ms = device.interval_s * 1000
    first_ms = start_ms + rng.randrange(step_ms)
    index = max(0, -(-(since_ms - first_ms) // step_ms))
    while (ts := first_ms + index * step_ms) <= until_ms:
        index += 1
        values = tidy(sensor.sample(datetime.fromtimestamp(ts / 1000, UTC), device.interval_s))
        yield TelemetryRecord(device_id=device.device_id, member_id=device.member_id, seq=index,
                              sent_at_ms=ts + SENT_AFTER_MS, received_at_ms=ts + RECEIVED_AFTER_MS,
                              readings=[(ts, metric, float(value)) for metric, value in values.items()])


@dataclass(frozen=True, slots=True)
class Timeline:
    """Where the run puts each kind's devices in event time: from `start_ms[kind]`, the backlog up to `end_ms`."""

    start_ms: dict[str, int]
    end_ms: int

    def backlog(self, fleet: Iterable[FleetDevice]) -> Iterator[TelemetryRecord]:
        """Every device's records up to the end, device after device."""
        for device in fleet:
            start = self.start_ms[device.kind]
            yield from device_records(device, start_ms=start, since_ms=start, until_ms=self.end_ms)

    def following(self, device: FleetDevice) -> TelemetryRecord:
        """The device's first record after the end."""
        return next(device_records(device, start_ms=self.start_ms[device.kind], since_ms=self.end_ms + 1,
                                   until_ms=self.end_ms + device.interval_s * 1000))

    def real_time(self, fleet: Iterable[FleetDevice], seconds: float) -> list[TelemetryRecord]:
        """Every device's records in the `seconds` after the end, in event-time order."""
        until = self.end_ms + int(seconds * 1000)
        found = [record for device in fleet
                 for record in device_records(device, start_ms=self.start_ms[device.kind], since_ms=self.end_ms + 1,
                                              until_ms=until)]
        return sorted(found, key=event_ms)


def event_ms(record: TelemetryRecord) -> int:
    return record.readings[0][0]


def probe_records(device_id: str, member_id: str) -> list[TelemetryRecord]:
    """Two records of a device outside the fleet, each a battery reading now: proof that the worker consumes."""
    now_ms = int(time.time() * 1000)
    return [TelemetryRecord(device_id=device_id, member_id=member_id, seq=seq, sent_at_ms=now_ms + seq,
                            received_at_ms=now_ms + seq, readings=[(now_ms + seq, "battery", 80.0)])
            for seq in (1, 2)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """Byte sizes of one value per device."""

    devices: int
    mean_b: float
    p50_b: int
    p95_b: int
    max_b: int


def summarize(sizes: Sequence[int]) -> Sizes | None:
    if not sizes:
        return None
    ordered = sorted(sizes)

    def rank(q: float) -> int:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return Sizes(devices=len(ordered), mean_b=sum(ordered) / len(ordered), p50_b=rank(0.5), p95_b=rank(0.95),
                 max_b=ordered[-1])


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetState:
    """What one run found: the worker's memory, the changelog, the restart and a minute at real-time rates."""

    devices: int
    event_minutes: dict[str, int]  # of the backlog, by kind
    records: int  # of the backlog
    readings: int
    judge_s: float  # first record of the backlog sent -> every one judged
    worker_cpu_s: float  # the worker's CPU over the same time
    idle_rss_kb: int  # started, two records judged, nothing else
    backlog_rss_kb: int  # every state judged, settled
    backlog_peak_rss_kb: int
    state: dict[str, Sizes]  # latest value per device on the changelog: "all", "wearable", "home"
    changelog_records: int  # written for the fleet while it judged the backlog
    changelog_bytes: int
    start_s: float  # worker started -> tables recovered, with an empty changelog
    restart_s: float  # worker started again -> tables recovered, the fleet's states read back
    restart_judged_s: float  # ... -> a known device's next record judged, its new state on the changelog
    restarted_rss_kb: int  # settled after the restart: the table of encoded states
    recovered: bool  # that new state holds as much as before (`held`): judged on the recovered state, not a new one
    real_time_window_s: float  # event time sent at real-time rates
    real_time_records: int
    real_time_s: float  # first of those records sent -> every one judged: the window, unless the worker fell behind
    real_time_worker_cpu_s: float
    real_time_rss_kb: int  # at the end of the real-time minute
    real_time_rss_samples_kb: tuple[int, ...]  # along it, the last at its end
    real_time_changelog_records: int
    real_time_changelog_bytes: int

    def per_device_b(self, rss_kb: int) -> float:
        """The RSS above the idle worker's, per device, in bytes."""
        return (rss_kb - self.idle_rss_kb) * 1024 / self.devices

    @property
    def recovery_s(self) -> float:
        """What reading the table back added to the worker's start."""
        return self.restart_s - self.start_s

    @property
    def changelog_bytes_per_s(self) -> float:
        """The fleet's changelog writes at real-time rates, whether or not the worker kept up with them."""
        return self.real_time_changelog_bytes / self.real_time_window_s

    def to_json(self) -> dict:
        return asdict(self) | {
            "backlog_rss_per_device_b": self.per_device_b(self.backlog_rss_kb),
            "restarted_rss_per_device_b": self.per_device_b(self.restarted_rss_kb),
            "real_time_rss_per_device_b": self.per_device_b(self.real_time_rss_kb),
            "changelog_bytes_per_device": self.changelog_bytes / self.devices,
            "changelog_bytes_per_s": self.changelog_bytes_per_s,
            "recovery_s": self.recovery_s,
            "aim_state_bytes": AIM_STATE_BYTES,
        }


# -- the shell: PostgreSQL, Kafka, the worker ----------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register(database_url: str, fleet: Sequence[FleetDevice]) -> None:
    """The fleet's members and devices, by COPY in one transaction."""
    policy = orjson.dumps({"number": "BENCH-FLEET", "line": "both"}).decode()
    consent = orjson.dumps({"monitoring": True, "outreach": False, "auto_claims": False}).decode()
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY members (id, name, policy, consent) FROM STDIN") as copy:
            for member_id in dict.fromkeys(d.member_id for d in fleet):
                copy.write_row((member_id, "Bench Member", policy, consent))
        with cur.copy("COPY devices (device_id, kind, member_id, report_interval_s, mqtt_username) FROM STDIN") as copy:
            for d in fleet:
                copy.write_row((d.device_id, d.kind, d.member_id, d.interval_s, d.device_id))


def unregister(database_url: str, prefix: str) -> dict[str, int]:
    """Delete the run's telemetry, alerts, devices and members; the rows deleted by table."""
    deleted = delete_devices_rows(database_url, f"{prefix}-%", tables=TELEMETRY_TABLES)
    with psycopg.connect(database_url, autocommit=True) as conn:
        deleted["devices"] = conn.execute("DELETE FROM devices WHERE device_id LIKE %s", (f"{prefix}-%",)).rowcount
        deleted["members"] = conn.execute("DELETE FROM members WHERE id LIKE %s", (f"{prefix}-%",)).rowcount
    return deleted


@contextlib.contextmanager
def own_broker(settings: Settings, run_id: str) -> Iterator[Settings]:
    """The settings of a Tansu started for this run (topics as `vigil stack` makes them), stopped after it."""
    own = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}",
                                      "state_dir": settings.state_dir / f"bench-fleet-{run_id}"})
    try:
        kafka.up(own)
        yield own
    finally:
        kafka.down(own)
        shutil.rmtree(own.state_dir, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class Changelog:
    """The fleet's records on the changelog: each device's latest value size, and where each partition ended."""

    latest: dict[bytes, int]
    records: int
    bytes: int
    ends: dict[int, int]
    kept: bytes | None = None  # the latest value of the key asked for, as written


class FleetKafka:
    """The run's producer, the worker group's committed offsets, and the changelog read back."""

    def __init__(self, bootstrap: str, name: str) -> None:
        self._bootstrap = bootstrap
        self._name = name
        # Configured like ingest's (ingest/service.py): murmur2 places a device's records, and its
        # state on the changelog, on the same partition.
        self._producer = Producer({"bootstrap.servers": bootstrap, "client.id": name,
                                   "acks": "all", "linger.ms": 5, "batch.num.messages": 10000,
                                   "partitioner": "murmur2_random", "queue.buffering.max.messages": 200000},
                                  logger=_quiet)
        # Asks for the group's committed offsets only; it never joins the group.
        self._group = Consumer({"bootstrap.servers": bootstrap, "group.id": APP_ID, "enable.auto.commit": False},
                               logger=_quiet)
        self.last_offsets: dict[int, int] = {}
        self.failed = 0

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.failed += 1
            return
        self.last_offsets[msg.partition()] = max(self.last_offsets.get(msg.partition(), -1), msg.offset())

    def send(self, records: Iterable[TelemetryRecord], *, paced_from_ms: int | None = None) -> tuple[int, int]:
        """Produce the records keyed by device, wait for the broker to have them all; (records, readings).

        With `paced_from_ms` each record goes when as much time has passed since the call as event
        time since then: the records come at the pace the devices would send them.
        """
        count = readings = 0
        started = time.monotonic()
        for record in records:
            if paced_from_ms is not None:
                due = started + (event_ms(record) - paced_from_ms) / 1000
                while (wait_s := due - time.monotonic()) > 0:
                    self._producer.poll(wait_s)
            value = record.model_dump_json().encode()
            while True:
                try:
                    self._producer.produce(TELEMETRY, value=value, key=record.device_id.encode(),
                                           on_delivery=self._delivered)
                    break
                except BufferError:
                    self._producer.poll(0.05)
            count += 1
            readings += len(record.readings)
            if count % 1000 == 0:
                self._producer.poll(0)
        left = self._producer.flush(120)
        if left or self.failed:
            raise FleetError(f"Kafka did not take {left + self.failed} of the run's {count} records")
        return count, readings

    def lag(self) -> int:
        """Records sent by this run and not yet committed by the worker's group."""
        partitions = [TopicPartition(TELEMETRY, p) for p in self.last_offsets]
        # A partition the group never committed on answers a negative offset: nothing read yet.
        committed = {tp.partition: max(tp.offset, 0) for tp in self._group.committed(partitions, timeout=10)}
        return sum(max(0, last + 1 - committed.get(p, 0)) for p, last in self.last_offsets.items())

    def read_changelog(self, prefix: str, *, start: dict[int, int] | None = None, idle_s: float = 3.0,
                       keep: bytes | None = None) -> Changelog:
        """Every record of the fleet's devices on the changelog, from its beginning or `start` to its end;
        the latest value of the key `keep` whole.

        The high watermarks are where the reading may stop, but it goes on until nothing came for
        `idle_s`: Tansu's watermarks can trail what it has acknowledged by a few records.
        """
        consumer = self._consumer()
        try:
            partitions = consumer.list_topics(CHANGELOG, timeout=10).topics[CHANGELOG].partitions
            highs = {p: consumer.get_watermark_offsets(TopicPartition(CHANGELOG, p), timeout=10)[1]
                     for p in partitions}
            ends = {p: (start or {}).get(p, 0) for p in partitions}
            consumer.assign([TopicPartition(CHANGELOG, p, ends[p] if start else OFFSET_BEGINNING)
                             for p in partitions])
            key_prefix = f"{prefix}-".encode()
            latest: dict[bytes, int] = {}
            kept: bytes | None = None
            records = written = 0
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < idle_s or any(ends[p] < high for p, high in highs.items()):
                batch = consumer.consume(10_000, timeout=0.5)
                if batch:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 60:
                    raise FleetError(f"the changelog {CHANGELOG} stopped short of its end: at {ends}, ends {highs}")
                for message in batch:
                    if message.error():
                        continue
                    ends[message.partition()] = message.offset() + 1
                    key, value = message.key() or b"", message.value()
                    if not key.startswith(key_prefix):
                        continue
                    if key == keep:
                        kept = value
                    if value is None:
                        latest.pop(key, None)
                        continue
                    latest[key] = len(value)
                    records += 1
                    written += len(value)
            return Changelog(latest=latest, records=records, bytes=written, ends=ends, kept=kept)
        finally:
            consumer.close()

    def wait_state(self, key: bytes, after: dict[int, int], timeout_s: float) -> bytes | None:
        """The first value of `key` on the changelog after the offsets `after`; None if none came."""
        consumer = self._consumer()
        try:
            consumer.assign([TopicPartition(CHANGELOG, p, offset) for p, offset in after.items()])
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                for message in consumer.consume(1000, timeout=0.2):
                    if not message.error() and message.key() == key and message.value() is not None:
                        return message.value()
            return None
        finally:
            consumer.close()

    def _consumer(self) -> Consumer:
        return Consumer({"bootstrap.servers": self._bootstrap, "group.id": self._name,
                         "enable.auto.commit": False}, logger=_quiet)

    def close(self) -> None:
        self._producer.flush(10)
        self._group.close()


class StreamWorker:
    """`python -m streams` as a child process on the run's broker, with its output in a log file."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.log_path = log_path
        self._env = os.environ | {
            "DATABASE_URL": settings.database_url,
            "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "VIGIL_STATE_DIR": str(settings.state_dir),
            "VIGIL_TELEMETRY_PARTITIONS": str(settings.telemetry_partitions),
            # No /metrics: a worker of the stack may hold the port, and the run reads Kafka and /proc.
            "VIGIL_STREAMS_METRICS_PORT": "0",
        }
        self._process: subprocess.Popen | None = None
        self._log_from = 0

    @property
    def pid(self) -> int:
        if self._process is None:
            raise FleetError("the stream worker was not started")
        return self._process.pid

    def start(self) -> float:
        """Start it; the monotonic time it was started at."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._log_from = log.tell()
            started = time.monotonic()
            self._process = subprocess.Popen([sys.executable, "-m", "streams"], stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env)
        return started

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it: Faust commits what it has judged, then exits."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def _output(self) -> str:
        """What the worker started last has logged."""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_from)
            return log.read().decode(errors="replace")

    def check(self) -> None:
        """Raise when the worker exited or cannot recover its table."""
        if not alive(self.pid):
            raise FleetError(f"the stream worker exited; its log ends:\n{log_tail(self.log_path)}")
        if _RECOVERY_FAILED in self._output():
            raise FleetError(f"the stream worker cannot rebuild its table from the changelog "
                             f"('{_RECOVERY_FAILED}' in {self.log_path})")

    def wait_recovered(self, started: float) -> float:
        """Seconds from `started` until the worker logged that its tables are recovered."""
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while time.monotonic() < deadline:
            if _RECOVERED in self._output():
                return time.monotonic() - started
            self.check()
            time.sleep(0.1)
        raise FleetError(f"the stream worker did not log '{_RECOVERED}' within {PROBE_TIMEOUT_S} s of its start; "
                         f"see {self.log_path}")

    def rss_kb(self) -> tuple[int, int]:
        """(RSS, peak RSS) in kB."""
        rss, peak = memory_kb(self.pid)
        if rss is None or peak is None:
            raise FleetError("the stream worker exited while it was measured")
        return rss, peak

    def cpu_s(self) -> float:
        ticks = cpu_ticks(self.pid)
        if ticks is None:
            raise FleetError("the stream worker exited while it was measured")
        return ticks / TICKS_PER_S


def wait_stored(database_url: str, worker: StreamWorker, record: TelemetryRecord) -> None:
    """Until the record is in `messages`."""
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT 1 FROM messages WHERE device_id = %s AND seq = %s",
                            (record.device_id, record.seq)).fetchone():
                return
            worker.check()
            time.sleep(0.1)
    raise FleetError(f"{record.device_id}'s record {record.seq} was not stored within {PROBE_TIMEOUT_S} s; "
                     f"see {worker.log_path}")


def wait_judged(fleet_kafka: FleetKafka, worker: StreamWorker, total: int, report: Callable[[str], None]) -> None:
    """Until the worker's group has committed every record sent: each is stored, judged, its state written."""
    seen, since, told = -1, time.monotonic(), time.monotonic()
    while (left := fleet_kafka.lag()) > 0:
        worker.check()
        if left != seen:
            seen, since = left, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            raise FleetError(f"the worker committed nothing for {STALL_S} s with {left:,} records left; "
                             f"see {worker.log_path}")
        if time.monotonic() - told >= PROGRESS_EVERY_S:
            told = time.monotonic()
            report(f"  … {total - left:,} of {total:,} records judged")
        time.sleep(1.0)


class RssSamples:
    """A process's RSS in kB every `every_s` while the block runs, on a thread of its own."""

    def __init__(self, pid: int, *, every_s: float) -> None:
        self._pid = pid
        self._every_s = every_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-samples", daemon=True)
        self.taken: list[int] = []

    def _sample(self) -> None:
        while not self._done.wait(self._every_s):
            rss, _ = memory_kb(self._pid)
            if rss is not None:
                self.taken.append(rss)

    def __enter__(self) -> RssSamples:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._done.set()
        self._thread.join()


def settled_rss(worker: StreamWorker) -> tuple[int, int]:
    time.sleep(SETTLE_S)
    worker.check()
    return worker.rss_kb()


class FleetRun:
    """One run's phases, in order, over its fleet, broker and worker; each returns its figures."""

    def __init__(self, settings: Settings, own: Settings, fleet: Sequence[FleetDevice], timeline: Timeline, *,
                 prefix: str, log_path: Path, report: Callable[[str], None]) -> None:
        self._database_url = settings.database_url
        self._fleet = fleet
        self._timeline = timeline
        self._prefix = prefix
        self._report = report
        self.kafka = FleetKafka(own.kafka_bootstrap, prefix)
        self.worker = StreamWorker(own, log_path)

    def _run(self, record: TelemetryRecord) -> tuple[float, float]:
        """Start the worker, and once it has recovered its tables send it a record and wait until it is
        stored; (the monotonic time it started at, seconds from then until it had recovered).

        The record is sent only then: one already waiting at the committed offset when the worker
        starts is sometimes never consumed by it (seen here on Tansu, about one start in two).
        """
        started = self.worker.start()
        recovered_s = self.worker.wait_recovered(started)
        self.kafka.send([record])
        wait_stored(self._database_url, self.worker, record)
        return started, recovered_s

    def start(self) -> dict:
        """The worker started on an empty table, twice; its RSS idle."""
        probes = probe_records(f"{self._prefix}-probe", self._fleet[0].member_id)
        _, start_s = self._run(probes[0])
        wait_judged(self.kafka, self.worker, 1, self._report)
        # Started once more before it is measured: Tansu numbers a group's first generation 0, and
        # aiokafka leaves a group only from generation 1 on, so the first worker's member would stay
        # in the group until its session timed out, and hold up the restart measured later.
        self.worker.stop()
        self._run(probes[1])
        idle_rss, _ = settled_rss(self.worker)
        return {"start_s": start_s, "idle_rss_kb": idle_rss}

    def backlog(self) -> dict:
        """Every device's records up to the timeline's end, as fast as the worker takes them."""
        cpu_before, sent_at = self.worker.cpu_s(), time.monotonic()
        records, readings = self.kafka.send(self._timeline.backlog(self._fleet))
        self._report(f"  {records:,} records ({readings:,} readings) sent in {time.monotonic() - sent_at:.0f} s; "
                     "waiting for the worker to judge them")
        wait_judged(self.kafka, self.worker, records, self._report)
        judge_s, cpu_s = time.monotonic() - sent_at, self.worker.cpu_s() - cpu_before
        rss, peak = settled_rss(self.worker)
        return {"records": records, "readings": readings, "judge_s": judge_s, "worker_cpu_s": cpu_s,
                "backlog_rss_kb": rss, "backlog_peak_rss_kb": peak}

    def restart(self, changelog: Changelog) -> dict:
        """Stop the worker, start it again, time it until it judged a known device's next record on its old state."""
        self.worker.stop()
        known = self._fleet[0]
        started, restart_s = self._run(self._timeline.following(known))
        after = self.kafka.wait_state(known.device_id.encode(), changelog.ends, PROBE_TIMEOUT_S)
        if after is None:
            raise FleetError(f"the restarted worker wrote no new state for {known.device_id}; "
                             f"see {self.worker.log_path}")
        judged_s = time.monotonic() - started
        rss, _ = settled_rss(self.worker)
        return {"restart_s": restart_s, "restart_judged_s": judged_s, "restarted_rss_kb": rss,
                "recovered": held(after) >= 0.75 * held(changelog.kept)}

    def real_time(self, seconds: float, changelog: Changelog) -> dict:
        """Every device's next `seconds` of records at the pace they would come; RSS and changelog writes."""
        known = self._fleet[0]
        # The restart already sent the known device's next record.
        skip = self._timeline.following(known).seq
        records = [r for r in self._timeline.real_time(self._fleet, seconds)
                   if r.device_id != known.device_id or r.seq > skip]
        self._report(f"  {len(records):,} records over {seconds:.0f} s")
        cpu_before, started = self.worker.cpu_s(), time.monotonic()
        with RssSamples(self.worker.pid, every_s=seconds / 6) as samples:
            count, _ = self.kafka.send(records, paced_from_ms=self._timeline.end_ms)
            wait_judged(self.kafka, self.worker, count, self._report)
        real_time_s, cpu_s = time.monotonic() - started, self.worker.cpu_s() - cpu_before
        rss, _ = self.worker.rss_kb()
        written = self.kafka.read_changelog(self._prefix, start=changelog.ends)
        return {"real_time_window_s": seconds, "real_time_records": count, "real_time_s": real_time_s,
                "real_time_worker_cpu_s": cpu_s, "real_time_rss_kb": rss,
                "real_time_rss_samples_kb": (*samples.taken, rss),
                "real_time_changelog_records": written.records, "real_time_changelog_bytes": written.bytes}

    def close(self) -> None:
        self.worker.stop()
        self.kafka.close()


def held(raw: bytes | None) -> int:
    """How much a state on the changelog holds: its size written plain.

    The worker writes a state judged once compressed and a busy one as it is, so the bytes of two
    writes of one device compare only once both are plain.
    """
    return len(state_codec.encode(stored(raw))) if raw else 0


def state_sizes(fleet: Iterable[FleetDevice], latest: dict[bytes, int]) -> dict[str, Sizes]:
    """The sizes of the fleet's latest states, all together and by kind."""
    kinds = {d.device_id.encode(): d.kind for d in fleet}
    found = {"all": [size for key, size in latest.items() if key in kinds]}
    for kind in KINDS:
        found[kind] = [size for key, size in latest.items() if kinds.get(key) == kind]
    return {name: sizes for name, values in found.items() if (sizes := summarize(values)) is not None}


def measure(settings: Settings, *, devices: int, extra_minutes: int = EXTRA_MINUTES,
            real_time_window_s: float = REAL_TIME_S, seed: int = SEED,
            report: Callable[[str], None] = lambda _text: None) -> FleetState:
    """Register a fleet of `devices`, have one stream worker judge it, measure its state; clean up after."""
    run_id = secrets.token_hex(3)
    prefix = f"bench-fleet-{run_id}"
    fleet = plan_fleet(prefix, devices, seed=seed)
    minutes = {kind: warm_up_minutes(kind, extra_minutes=extra_minutes) for kind in KINDS}
    end_ms = int(time.time() * 1000) - 1000
    timeline = Timeline(start_ms={kind: end_ms - m * 60_000 for kind, m in minutes.items()}, end_ms=end_ms)
    postgres.up(settings)
    log_path = settings.state_dir / "logs" / f"bench-fleet-{run_id}.log"
    report(f"run {run_id}: {devices:,} devices; the worker's output goes to {log_path}")
    figures: dict = {}
    with own_broker(settings, run_id) as own:
        run = FleetRun(settings, own, fleet, timeline, prefix=prefix, log_path=log_path, report=report)
        try:
            register(settings.database_url, fleet)
            report("starting the stream worker with an empty table")
            figures |= run.start()
            report(f"sending the backlog: {minutes['wearable']} minutes of each wearable's records, "
                   f"{minutes['home']} of each home sensor's")
            figures |= run.backlog()
            report("reading the changelog back")
            changelog = run.kafka.read_changelog(prefix, keep=fleet[0].device_id.encode())
            report("restarting the worker")
            figures |= run.restart(changelog)
            report(f"{real_time_window_s:.0f} s of the fleet's records at real-time rates")
            figures |= run.real_time(real_time_window_s, changelog)
        finally:
            run.close()
            report("deleting the run's rows")
            unregister(settings.database_url, prefix)
            vacuum_telemetry(settings.database_url)
    return FleetState(devices=devices, event_minutes=minutes, state=state_sizes(fleet, changelog.latest),
                      changelog_records=changelog.records, changelog_bytes=changelog.bytes, **figures)


# -- the report ---------------------------------------------------------------------------------

def _kb(value_b: float) -> str:
    return f"{value_b / 1024:,.2f} KiB"


def _mb(value_kb: int) -> str:
    return f"{value_kb / 1024:,.0f} MB"


def spread(values: Sequence[int], most: int = 7) -> list[int]:
    """At most `most` of the values, evenly spaced, the last one included."""
    if len(values) <= most:
        return list(values)
    return [values[round(i * (len(values) - 1) / (most - 1))] for i in range(most)]


def rows(result: FleetState) -> list[tuple[str, str]]:
    """(figure, value) for a table."""
    per_device = result.per_device_b
    found = [
        ("fleet", f"{result.devices:,} devices; backlog of {result.event_minutes['wearable']} min per wearable, "
                  f"{result.event_minutes['home']} min per home sensor"),
        ("backlog judged", f"{result.records:,} records = {result.readings:,} readings in {result.judge_s:.0f} s "
                           f"({result.records / result.judge_s:,.0f} records/s; "
                           f"worker CPU {result.worker_cpu_s:.0f} s)"),
        ("worker RSS idle", _mb(result.idle_rss_kb)),
        ("worker RSS after the backlog", f"{_mb(result.backlog_rss_kb)} (peak {_mb(result.backlog_peak_rss_kb)}): "
                                         f"{_kb(per_device(result.backlog_rss_kb))} per device"),
        ("worker RSS after a restart", f"{_mb(result.restarted_rss_kb)}: {_kb(per_device(result.restarted_rss_kb))} "
                                       "per device, the table of encoded states"),
        ("real-time rates", f"{result.real_time_records:,} records over {result.real_time_window_s:.0f} s "
                            f"({result.real_time_records / result.real_time_window_s:,.0f}/s) judged in "
                            f"{result.real_time_s:.0f} s ({result.real_time_records / result.real_time_s:,.0f}/s; "
                            f"worker CPU {result.real_time_worker_cpu_s:.0f} s)"),
        ("worker RSS at real-time rates", f"{_mb(result.real_time_rss_kb)}: "
                                          f"{_kb(per_device(result.real_time_rss_kb))} per device; along the run "
                                          + " → ".join(_mb(kb) for kb in spread(result.real_time_rss_samples_kb))),
    ]
    for name in ("all", *KINDS):
        sizes = result.state.get(name)
        if sizes is not None:
            found.append((f"changelog state, {name} ({sizes.devices:,})",
                          f"mean {sizes.mean_b:,.0f} B · p50 {sizes.p50_b:,} B · p95 {sizes.p95_b:,} B · "
                          f"max {sizes.max_b:,} B"))
    recovered = ("judged on its recovered state" if result.recovered
                 else "[red]its state was NOT recovered: judged as a new device's[/red]")
    hourly = result.changelog_bytes_per_s * 3600 / result.devices
    found += [
        ("changelog written for the backlog", f"{result.changelog_records:,} records, "
                                              f"{_kb(result.changelog_bytes / result.devices)} per device"),
        ("changelog at real-time rates", f"{result.changelog_bytes_per_s / 1e6:,.2f} MB/s for the fleet "
                                         f"({result.real_time_changelog_records / result.real_time_window_s:,.0f} "
                                         f"states/s), {hourly / 1e6:,.2f} MB per device per hour"),
        ("worker start, empty changelog", f"{result.start_s:.1f} s to its tables recovered"),
        ("worker restart", f"{result.restart_s:.1f} s to its tables recovered (+{result.recovery_s:.1f} s for the "
                           f"fleet's states); {result.restart_judged_s:.1f} s to a known device's next record "
                           f"judged, {recovered}"),
    ]
    return found


def aim_verdicts(result: FleetState) -> list[tuple[str, float, bool]]:
    """Issue 9's aim, <= 2 KiB per device on average, for the changelog state and the worker's memory."""
    mean = result.state["all"].mean_b if "all" in result.state else math.inf
    memory = result.per_device_b(result.real_time_rss_kb)
    return [("changelog state per device", mean, mean <= AIM_STATE_BYTES),
            ("worker memory per device at real-time rates", memory, memory <= AIM_STATE_BYTES)]


def render(result: FleetState, out: Console) -> None:
    table = Table("figure", "value", title=f"Detector state of a {result.devices:,}-device fleet (one stream worker)")
    for row in rows(result):
        table.add_row(*row)
    out.print(table)
    for name, value, met in aim_verdicts(result):
        verdict = "[green]met[/green]" if met else "[red]not met[/red]"
        out.print(f"• {name}: {_kb(value)} against <= {_kb(AIM_STATE_BYTES)}: {verdict}")


def fleet_state(
    devices: Annotated[int, typer.Option(help="Registered devices, half wearables and half home sensors.",
                                         min=2)] = 100_000,
    extra_minutes: Annotated[int, typer.Option(help="Backlog per device beyond its longest minute window "
                                                    "and the lateness allowance.", min=0)] = EXTRA_MINUTES,
    real_time_window_s: Annotated[float, typer.Option("--real-time-seconds",
                                               help="Event time sent at real-time rates after the restart.",
                                               min=5)] = REAL_TIME_S,
    seed: Annotated[int, typer.Option(help="Seed of the fleet's intervals and signals.")] = SEED,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.",
                                                   dir_okay=False)] = None,
) -> None:
    """Have one stream worker judge a realistic fleet; print its memory, changelog and restart per device."""
    settings = get_settings()
    configure_logging("WARNING")
    try:
        result = measure(settings, devices=devices, extra_minutes=extra_minutes,
                         real_time_window_s=real_time_window_s, seed=seed, report=console.print)
    except FleetError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    render(result, console)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_json(), indent=2))


if __name__ == "__main__":
    typer.run(fleet_state)
