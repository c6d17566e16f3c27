"""Stream workers sharing the telemetry partitions, joining and leaving mid-stream.

A second worker runs beside the pipeline's own, as `vigil run --workers 2` runs it (its own metrics
port, `vigil.runner.copy_env`). Devices publish steadily on every telemetry partition throughout,
so whichever partitions move, some of them carry:

- a leak whose 60 s wet span straddles the move: half its readings are judged before it, half
  after, by whichever worker then holds the device. With its state intact it raises one alert,
  stamped with the reading that completed the span; a worker that started the device afresh would
  raise none (30 s of wet readings after the move is not enough).
- a leak raised before the move that dries out after it: with the open alert in the device's state
  the dry readings clear it; without it, the alert stays open for good.

Then every acknowledged message must be stored once with all its readings, each device must have
exactly its one alert in the database, and the alerts topic must carry each change exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, TopicPartition

from streams.app import COMMIT_INTERVAL_S
from tests.e2e.support import DeviceCredentials, DevicePublisher, SteadyLoad, message, minutes_ago, wait_for
from vigil.runner import copy_env
from vigil.settings import Settings
from vigil.topics import ALERTS

pytestmark = pytest.mark.infra
RATE_PER_DEVICE = 10  # messages/s from each steady device, one device per telemetry partition
STEADY_READINGS = 3  # per steady message (SteadyLoad's default)
# Faust commits (and the worker writes its device states) every COMMIT_INTERVAL_S: a little more
# than that after the alerts before a move are raised, they are behind the committed offsets.
COMMITTED_S = COMMIT_INTERVAL_S + 1.5
LEAK_SPAN_S = 60  # the water_leak rule's raise span (docs/rules.md)
DRY_SPAN_S = 300  # and its clear span
# The wet readings of a straddling leak: the first half is judged before the move, the rest after.
WET_BEFORE_S = (0, 10, 20, 30)
WET_AFTER_S = (40, 50, 60, 70)
# A leak raised before the move (wet 0-60 s), then dry from 90 s for the clear span.
RAISED_BEFORE_S = (0, 20, 40, 60)
DRY_AFTER_S = tuple(range(90, 90 + DRY_SPAN_S + 1, 60))
SETTLE_S = 180


def telemetry_partition(device_id: str, partitions: int) -> int:
    """The partition ingest's murmur2 partitioner (Kafka's own) puts a device's records on."""
    return (murmur2(device_id.encode()) & 0x7FFFFFFF) % partitions


class SecondWorker:
    """The second of `vigil run --workers 2`'s stream workers, with its own metrics port and log."""

    def __init__(self, settings: Settings) -> None:
        self.env = {**os.environ, **copy_env("streams", 1, settings)}
        self.metrics_port = int(self.env["VIGIL_STREAMS_METRICS_PORT"])
        self.log_path = settings.state_dir / "logs" / "streams-2.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

    def leave(self, signum: int) -> int:
        """Send the signal and wait for the worker to be gone; its exit status."""
        assert self.proc is not None and self.proc.poll() is None, f"streams-2 exited early:\n{self.log_text()}"
        self.proc.send_signal(signum)
        return self.proc.wait(60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def readings_stored_by(port: int) -> float:
    """The worker's own count of readings it inserted; 0 until its metrics answer."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("vigil_streams_readings_stored_total "):
            return float(line.split()[1])
    return 0.0


@pytest.fixture
def second_worker(pipeline) -> Iterator[SecondWorker]:
    worker = SecondWorker(pipeline.settings)
    try:
        yield worker
    finally:
        worker.stop()


@dataclass
class Fleet:
    """The devices of one test: on every telemetry partition, steady ones and the two kinds of leak."""

    steady: list[DeviceCredentials]
    straddling: list[DeviceCredentials]
    raised_before: list[DeviceCredentials]
    start: datetime  # event time of each leak's first wet reading
    publishers: dict[str, DevicePublisher] = field(default_factory=dict)
    loads: list[SteadyLoad] = field(default_factory=list)

    @property
    def leaks(self) -> list[DeviceCredentials]:
        return self.straddling + self.raised_before

    def at(self, offset_s: int) -> datetime:
        return self.start + timedelta(seconds=offset_s)


def one_per_partition(pipeline, kind: str, **where) -> list[DeviceCredentials]:
    partitions = pipeline.settings.telemetry_partitions
    found: dict[int, DeviceCredentials] = {}
    for _ in range(20 * partitions):
        device = pipeline.register_device(kind, **where)
        found.setdefault(telemetry_partition(device.device_id, partitions), device)
        if len(found) == partitions:
            return [found[p] for p in range(partitions)]
    raise AssertionError(f"registered {20 * partitions} devices without covering {partitions} partitions")


def publish_wet_or_dry(fleet: Fleet, device: DeviceCredentials, offsets_s: tuple[int, ...], wet: int,
                       first_seq: int) -> None:
    publisher = fleet.publishers[device.device_id]
    for n, offset in enumerate(offsets_s):
        reason = publisher.publish(message(device.device_id, first_seq + n, [(fleet.at(offset), "water_leak", wet)]))
        assert not reason.is_failure, reason


def before_the_move(pipeline, fleet: Fleet) -> None:
    """Half of each straddling leak's span, and each other leak's whole span: raised, and committed."""
    for device in fleet.straddling:
        publish_wet_or_dry(fleet, device, WET_BEFORE_S, 1, first_seq=1)
    for device in fleet.raised_before:
        publish_wet_or_dry(fleet, device, RAISED_BEFORE_S, 1, first_seq=1)
    for device in fleet.leaks:
        wait_for(lambda d=device: pipeline.stored_count(d.device_id) == 4, 60, what=f"{device.device_id}'s first half")
    wait_for(lambda: all(alerts_of(pipeline, d.device_id) for d in fleet.raised_before), 60,
             what="the leaks before the move to be raised")
    assert not any(alerts_of(pipeline, d.device_id) for d in fleet.straddling), "raised on half a span"
    time.sleep(COMMITTED_S)


def after_the_move(fleet: Fleet) -> None:
    for device in fleet.straddling:
        publish_wet_or_dry(fleet, device, WET_AFTER_S, 1, first_seq=1 + len(WET_BEFORE_S))
    for device in fleet.raised_before:
        publish_wet_or_dry(fleet, device, DRY_AFTER_S, 0, first_seq=1 + len(RAISED_BEFORE_S))


def alerts_of(pipeline, device_id: str) -> list[tuple]:
    return pipeline.query("SELECT id::text, type, triggered_at, cleared_at FROM alerts WHERE device_id = %s "
                          "ORDER BY triggered_at", device_id)


def alert_changes(settings: Settings, device_ids: set[str]) -> dict[str, list[tuple[str, str]]]:
    """Every (alert id, change) on the alerts topic for these devices, read to the end of each partition."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"test-scale-{time.time()}",
                         "enable.auto.commit": False})
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    try:
        partitions = consumer.list_topics(ALERTS, timeout=10).topics[ALERTS].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(ALERTS, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(ALERTS, p, 0) for p in partitions])
        positions = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + 30
        while any(positions[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"could not read the alerts topic to its end: {positions} of {ends}"
            record = consumer.poll(0.5)
            if record is None or record.error():
                continue
            positions[record.partition()] = record.offset() + 1
            if record.key() is not None and record.key().decode() in device_ids:
                change = json.loads(record.value())
                found[change["device_id"]].append((change["alert_id"], change["change"]))
    finally:
        consumer.close()
    return found


def start_fleet(pipeline, stack: ExitStack) -> Fleet:
    fleet = Fleet(steady=one_per_partition(pipeline, "home"),
                  straddling=one_per_partition(pipeline, "home", location="kitchen"),
                  raised_before=one_per_partition(pipeline, "home", location="bathroom"),
                  start=minutes_ago(15).replace(microsecond=0))
    for device in fleet.steady + fleet.leaks:
        fleet.publishers[device.device_id] = stack.enter_context(DevicePublisher(pipeline.settings, device))
    fleet.loads = [SteadyLoad(fleet.publishers[d.device_id], RATE_PER_DEVICE).start() for d in fleet.steady]
    return fleet


def stop_and_check(pipeline, fleet: Fleet) -> int:
    """Stop the steady load; check that nothing was lost or stored twice and that each leak alerted right.

    Returns the number of acknowledged messages."""
    sent = [load.stop() for load in fleet.loads]
    steady = [fleet.publishers[d.device_id] for d in fleet.steady]
    wait_for(lambda: all(len(p.acked) + len(p.refused) == n for p, n in zip(steady, sent, strict=True)),
             120, what="the broker to acknowledge every publish")
    acked_total = 0
    for device in fleet.steady + fleet.leaks:
        publisher = fleet.publishers[device.device_id]
        assert not publisher.refused
        acked = publisher.acked
        acked_total += len(acked)
        wait_for(lambda d=device, a=acked: pipeline.stored_count(d.device_id) >= len(a), SETTLE_S,
                 what=f"{len(acked)} acknowledged messages of {device.device_id} to be stored")
        stored = {seq for (seq,) in pipeline.query("SELECT seq FROM messages WHERE device_id = %s", device.device_id)}
        assert acked <= stored, f"{device.device_id} lost {sorted(acked - stored)[:10]}"
        per_message = STEADY_READINGS if device in fleet.steady else 1
        wrong = pipeline.query("SELECT seq, count(*) FROM readings WHERE device_id = %s GROUP BY seq "
                               "HAVING count(*) <> %s", device.device_id, per_message)
        assert wrong == [], f"{device.device_id}: messages stored with a wrong number of readings: {wrong[:10]}"

    def settled() -> bool:
        return (all(alerts_of(pipeline, d.device_id) for d in fleet.straddling)
                and all(rows and rows[0][3] is not None
                        for rows in (alerts_of(pipeline, d.device_id) for d in fleet.raised_before)))

    # A device whose state was lost never settles: the assertions below then say which and how.
    deadline = time.monotonic() + 120
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(COMMITTED_S)  # room for a change sent twice to arrive
    raised = {d.device_id: alerts_of(pipeline, d.device_id) for d in fleet.leaks}
    for device in fleet.straddling:
        assert [(t, at) for _, t, at, _ in raised[device.device_id]] == [
            ("water_leak", fleet.at(LEAK_SPAN_S))], f"{device.device_id}: the span straddling the move"
    for device in fleet.raised_before:
        assert [(t, at, cleared) for _, t, at, cleared in raised[device.device_id]] == [
            ("water_leak", fleet.at(LEAK_SPAN_S), fleet.at(DRY_AFTER_S[-1]))], (
            f"{device.device_id}: the alert open across the move")
    changes = alert_changes(pipeline.settings, {d.device_id for d in fleet.leaks})
    for device in fleet.leaks:
        [(alert_id, *_)] = raised[device.device_id]
        expected = [(alert_id, "raised")] + ([(alert_id, "cleared")] if device in fleet.raised_before else [])
        assert changes[device.device_id] == expected, f"{device.device_id}: alert changes on {ALERTS}"
    return acked_total


def join(worker: SecondWorker) -> None:
    """Start the second worker and wait until it stores readings: it holds telemetry partitions."""
    worker.start()
    wait_for(lambda: readings_stored_by(worker.metrics_port) > 0, 120,
             what=f"the second worker to take telemetry partitions (log: {worker.log_path})")


def assert_clean_logs(pipeline, worker: SecondWorker, first_log_offset: int, exits_before: int) -> None:
    first = pipeline.streams.log_text()[first_log_offset:]
    for name, text in (("streams", first), ("streams-2", worker.log_text())):
        assert "Error in recovery" not in text, f"{name} could not recover the device states"
    assert len(pipeline.streams.unexpected_exits) == exits_before, (
        f"the first worker exited on its own: {pipeline.streams.unexpected_exits[exits_before:]}")


def test_two_workers_share_the_partitions_and_store_every_reading_once(pipeline, second_worker):
    first_port = pipeline.settings.streams_metrics_port
    log_offset, exits = len(pipeline.streams.log_text()), len(pipeline.streams.unexpected_exits)
    with ExitStack() as stack:
        fleet = start_fleet(pipeline, stack)
        join(second_worker)
        shared_from = readings_stored_by(first_port), readings_stored_by(second_worker.metrics_port)
        before_the_move(pipeline, fleet)
        after_the_move(fleet)
        time.sleep(3)  # more steady load with both workers in the group
        by_first = readings_stored_by(first_port) - shared_from[0]
        by_second = readings_stored_by(second_worker.metrics_port) - shared_from[1]
        acked = stop_and_check(pipeline, fleet)

    assert by_first > 0 and by_second > 0, f"readings stored by each worker while both ran: {by_first}, {by_second}"
    assert acked > 200
    assert_clean_logs(pipeline, second_worker, log_offset, exits)


def test_a_worker_joining_mid_stream_takes_partitions_with_their_device_state(pipeline, second_worker):
    log_offset, exits = len(pipeline.streams.log_text()), len(pipeline.streams.unexpected_exits)
    with ExitStack() as stack:
        fleet = start_fleet(pipeline, stack)
        time.sleep(2)  # the pipeline's worker alone holds every partition, under load
        before_the_move(pipeline, fleet)
        join(second_worker)
        after_the_move(fleet)
        time.sleep(2)
        acked = stop_and_check(pipeline, fleet)

    assert acked > 200
    assert_clean_logs(pipeline, second_worker, log_offset, exits)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_worker_leaving_mid_stream_hands_its_partitions_and_device_state_over(pipeline, second_worker,
                                                                                 signum: int):
    log_offset, exits = len(pipeline.streams.log_text()), len(pipeline.streams.unexpected_exits)
    with ExitStack() as stack:
        fleet = start_fleet(pipeline, stack)
        join(second_worker)
        before_the_move(pipeline, fleet)
        status = second_worker.leave(signum)
        after_the_move(fleet)
        time.sleep(2)
        acked = stop_and_check(pipeline, fleet)

    assert status == (-signal.SIGKILL if signum == signal.SIGKILL else 0), second_worker.log_text()[-3000:]
    assert acked > 200
    assert_clean_logs(pipeline, second_worker, log_offset, exits)

