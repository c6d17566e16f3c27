"""Faults in the middle of a steady stream: every message the broker acknowledged is stored once.

Each test publishes from two devices at a steady rate, breaks one part for a while, mends it,
stops publishing, and then compares what the publishers saw acknowledged with what is stored.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from datetime import timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.e2e.support import DevicePublisher, SteadyLoad, message, minutes_ago, wait_for

pytestmark = pytest.mark.infra
RATE_PER_DEVICE = 40  # messages/s
WORKER_RESTART_PAUSE_S = 3


def _run_with_fault(pipeline, fault, *, before_s: float = 3, after_s: float = 5, settle_s: float = 180):
    devices = [pipeline.register_device("home") for _ in range(2)]
    with ExitStack() as stack:
        publishers = [stack.enter_context(DevicePublisher(pipeline.settings, d)) for d in devices]
        loads = [SteadyLoad(p, RATE_PER_DEVICE).start() for p in publishers]
        time.sleep(before_s)
        fault()
        time.sleep(after_s)
        sent = [load.stop() for load in loads]
        # Let in-flight publishes finish being acknowledged by the broker.
        wait_for(lambda: all(len(p.acked) + len(p.refused) == n for p, n in zip(publishers, sent, strict=True)),
                 120, what="the broker to acknowledge every publish")
    for device, publisher in zip(devices, publishers, strict=True):
        assert not publisher.refused
        acked = publisher.acked
        wait_for(lambda d=device, a=acked: pipeline.stored_count(d.device_id) >= len(a), settle_s,
                 what=f"{len(acked)} acknowledged messages of {device.device_id} to be stored")
        stored = {seq for (seq,) in pipeline.query("SELECT seq FROM messages WHERE device_id = %s",
                                                   device.device_id)}
        assert acked <= stored, f"lost {sorted(acked - stored)[:10]}"
        per_seq = pipeline.query("SELECT seq, count(*) FROM readings WHERE device_id = %s GROUP BY seq "
                                 "HAVING count(*) <> 3", device.device_id)
        assert per_seq == [], f"messages stored with a wrong number of readings: {per_seq[:10]}"
    return sum(len(p.acked) for p in publishers)


def test_ingest_killed_and_restarted_mid_stream(pipeline):
    def fault():
        pipeline.ingest.kill9()
        time.sleep(3)
        pipeline.ingest.start()

    assert _run_with_fault(pipeline, fault) > 300


def test_stream_worker_killed_and_restarted_mid_stream(pipeline):
    def fault():
        pipeline.streams.kill9()
        time.sleep(WORKER_RESTART_PAUSE_S)
        pipeline.streams.start()

    log_offset = len(pipeline.streams.log_text())
    assert _run_with_fault(pipeline, fault) > 300
    # The restarted worker's first recovery, the likeliest to stall, is watched (`recovery_watch`).
    assert "watching table recoveries" in pipeline.streams.log_text()[log_offset:]


def test_kafka_frozen_for_30_seconds(pipeline):
    pid = int((pipeline.settings.state_dir / "kafka" / "tansu.pid").read_text())

    def fault():
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(30)
        finally:
            os.kill(pid, signal.SIGCONT)

    assert _run_with_fault(pipeline, fault) > 2000


def test_database_refusing_connections_for_30_seconds(pipeline):
    name = pipeline.settings.database_name
    admin_url = make_conninfo(pipeline.settings.database_url, dbname="postgres")

    def fault():
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            try:
                time.sleep(30)
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    assert _run_with_fault(pipeline, fault) > 2000


def test_worker_killed_mid_episode_neither_loses_it_nor_raises_it_twice(pipeline):
    device = pipeline.register_device("wearable")
    start = minutes_ago(30).replace(second=0, microsecond=0)

    def minute_message(minute: int) -> dict:
        readings = []
        for second in (0, 30):
            ts = start + timedelta(minutes=minute, seconds=second)
            readings += [(ts, "heart_rate", 131), (ts, "steps", 0), (ts, "worn", 1)]
        return message(device.device_id, minute + 1, readings)

    with DevicePublisher(pipeline.settings, device) as pub:
        for minute in range(6):  # six of the ten minutes the rule needs
            pub.publish(minute_message(minute))
        wait_for(lambda: pipeline.stored_count(device.device_id) == 6, 60, what="the first half of the episode")
        time.sleep(2)  # let the worker save its state for those minutes
        log_offset = len(pipeline.streams.log_text())
        pipeline.streams.kill9()
        time.sleep(WORKER_RESTART_PAUSE_S)
        pipeline.streams.start()
        for minute in range(6, 16):
            pub.publish(minute_message(minute))
        wait_for(lambda: pipeline.stored_count(device.device_id) == 16, 120, what="the rest of the episode")

    def alerts():
        return pipeline.api.get("/api/v1/alerts", params={"device_id": device.device_id}).json()

    raised = wait_for(alerts, 60, what="the tachycardia alert")
    time.sleep(3)
    raised = alerts()
    assert [(a["type"], a["triggered_at"][:16]) for a in raised] == [
        ("tachycardia", (start + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M"))]
    assert "Error in recovery" not in pipeline.streams.log_text()[log_offset:]
