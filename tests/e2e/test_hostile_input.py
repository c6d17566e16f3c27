"""One device's worst messages against the real pipeline: each costs only itself, and liveness tells the truth.

Issue 10, item 1: 60 KB of `[` (or a 5,000-digit `seq`) raised out of ingest's MQTT callback,
killed paho's network thread for good (the message was redelivered to every new ingest), while
heartbeats went on and `/health` said up.
"""

from __future__ import annotations

import json
import os
import signal
import time
from contextlib import contextmanager

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from psycopg.conninfo import make_conninfo

from tests.e2e.support import DevicePublisher, message, now, wait_for
from vigil.topics import HEARTBEAT_GAP_S, HEARTBEATS, INGEST_PROBE_FILTER, ingest_probe_topic

pytestmark = pytest.mark.infra
INGEST = "ingest-0"


def _hostile_payloads(device_id: str) -> dict[str, bytes]:
    start = f'{{"device_id": "{device_id}", "sent_at": "2026-11-22T10:00:05Z", '.encode()
    readings = b'"readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", "value": 0}]'
    return {
        "60 KB of [": b"[" * 60_000,
        "5,000-digit seq": start + b'"seq": ' + b"7" * 5000 + b", " + readings + b"}",
        "1,000 closed arrays": b"[" * 1000 + b"]" * 1000,
        "NaN": start + b'"seq": 1, "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", "value": NaN}]}',
        "lone surrogate": start + b'"seq": 1, "note": "\\ud800", ' + readings + b"}",
        "invalid UTF-8": start + b'"seq": 1, "note": "\xc3\x28", ' + readings + b"}",
    }


def test_hostile_payloads_are_dead_lettered_and_ingest_goes_on(pipeline):
    device = pipeline.register_device("home")
    hostile = _hostile_payloads(device.device_id)
    log_offset = len(pipeline.ingest.log_text())

    with DevicePublisher(pipeline.settings, device) as pub:
        for payload in hostile.values():
            assert not pub.publish_raw(payload).is_failure
        pub.publish(message(device.device_id, 1, [(now(), "temperature", 21)]))
    # The message after them is stored: ingest's loop survived every one.
    wait_for(lambda: pipeline.stored_count(device.device_id) == 1, 60, what="the good message after the hostile ones")
    dead = wait_for(lambda: (rows := pipeline.dead_letters(device.device_id)) and len(rows) >= len(hostile) and rows,
                    60, what="a dead letter for each hostile payload")
    assert [reason for reason, _ in dead] == ["invalid_json"] * len(hostile)
    assert all(detail.startswith("not UTF-8 JSON: ") for _, detail in dead)
    assert pipeline.ingest.proc.poll() is None

    # Each was acknowledged once Kafka had its dead letter: an ingest restarted on the same persistent
    # session gets none of them again (before, the first one killed every new ingest).
    pipeline.ingest.stop()
    pipeline.ingest.start()
    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish(message(device.device_id, 2, [(now(), "temperature", 21)]))
    wait_for(lambda: pipeline.stored_count(device.device_id) == 2, 60, what="a message after the restart")
    time.sleep(2)
    assert len(pipeline.dead_letters(device.device_id)) == len(hostile)
    log = pipeline.ingest.log_text()[log_offset:]
    assert "Traceback" not in log and "thread died" not in log


def test_timestamps_that_are_not_rfc3339_are_refused_naming_the_field(pipeline):
    device = pipeline.register_device("home")
    unix_ts = message(device.device_id, 1, [(now(), "temperature", 21), (now(), "humidity", 40)])
    unix_ts["readings"][1]["ts"] = int(time.time())
    unix_sent_at = message(device.device_id, 2, [(now(), "temperature", 21)])
    unix_sent_at["sent_at"] = time.time()

    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish(unix_ts)
        pub.publish(unix_sent_at)

    dead = wait_for(lambda: (rows := pipeline.dead_letters(device.device_id)) and len(rows) == 2 and rows, 60,
                    what="two dead letters")
    assert [(reason, detail.split(":")[0]) for reason, detail in dead] == [("bad_reading", "readings.1.ts"),
                                                                         ("schema", "sent_at")]
    wait_for(lambda: pipeline.stored_count(device.device_id) == 1, 60, what="the message with one good reading")
    kept = pipeline.query("SELECT metric FROM readings WHERE device_id = %s", device.device_id)
    assert kept == [("temperature",)]


def _heartbeats_between(settings, start_ms: int, end_ms: int) -> list[dict]:
    """Ingest's heartbeats on Kafka whose probe came back between the two times."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"test-{time.time()}",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(HEARTBEATS, 0, 0)])
        found, idle_since = [], time.monotonic()
        while time.monotonic() - idle_since < 3:
            record = consumer.poll(0.5)
            if record is None or record.error():
                continue
            idle_since = time.monotonic()
            body = json.loads(record.value())
            if body["component"] == INGEST and start_ms <= body["sent_at_ms"] <= end_ms:
                found.append(body)
        return found
    finally:
        consumer.close()


@contextmanager
def _database_refusing_connections(settings):
    name = settings.database_name
    with psycopg.connect(make_conninfo(settings.database_url, dbname="postgres"), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def _ms() -> int:
    return int(time.time() * 1000)


def test_a_stuck_message_loop_stops_the_heartbeats(pipeline):
    # A device the registry no longer knows makes ingest ask the database; while the database refuses
    # connections, ingest holds the message in its callback (by design: it may be a registered device).
    device = pipeline.register_device("home")
    pipeline.query("DELETE FROM devices WHERE device_id = %s RETURNING device_id", device.device_id)
    time.sleep(7)  # the registry's snapshot (refreshed every 5 s) forgets it
    before = _ms()
    time.sleep(12)
    assert _heartbeats_between(pipeline.settings, before, _ms()), "no heartbeats even before the loop was stuck"

    with DevicePublisher(pipeline.settings, device) as pub, _database_refusing_connections(pipeline.settings):
        assert not pub.publish(message(device.device_id, 1, [(now(), "temperature", 21)])).is_failure
        time.sleep(3)  # a probe already on its way may still come back
        stuck_from = _ms()
        time.sleep(15)
        stuck_until = _ms()
        # Before, a timer kept sending them: the process and its Kafka producer were fine, only the loop was not.
        assert _heartbeats_between(pipeline.settings, stuck_from, stuck_until) == []

    # The database is back: the held message is judged, and the loop earns heartbeats again.
    dead = wait_for(lambda: pipeline.dead_letters(device.device_id), 60, what="the held message's dead letter")
    assert [reason for reason, _ in dead] == ["unknown_device"]
    wait_for(lambda: _heartbeats_between(pipeline.settings, stuck_until, _ms()), 60, what="heartbeats again")


def test_a_device_can_neither_forge_nor_watch_ingest_probes(pipeline):
    device = pipeline.register_device("home")
    with DevicePublisher(pipeline.settings, device) as pub:
        assert pub.publish_raw(b"{}", topic=ingest_probe_topic("0")).value == 0x87  # not authorized
        granted = []
        pub.client.on_subscribe = lambda _c, _u, _mid, codes, _p: granted.extend(codes)
        pub.client.subscribe(INGEST_PROBE_FILTER, qos=0)
        wait_for(lambda: granted, 10, what="the SUBACK")
    assert [code.value for code in granted] == [0x87]


def _health(pipeline) -> tuple[int, dict]:
    response = pipeline.api.get("/health")
    return response.status_code, response.json()["components"]


def test_a_frozen_ingest_shows_as_down_in_health(pipeline):
    wait_for(lambda: _health(pipeline)[0] == 200, 60, what="/health to be up")
    pid = pipeline.ingest.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        # Within the heartbeat gap (and the time the stream worker takes to store the last one).
        status, components = wait_for(lambda: (h := _health(pipeline)) and h[1]["pipeline"] == "down" and h,
                                      HEARTBEAT_GAP_S + 20, what="/health to show the pipeline down")
        assert status == 503
        # The broker still accepts TCP connections: that probe alone said "up" before.
        assert (components["database"], components["mqtt"]) == ("up", "up")
    finally:
        os.kill(pid, signal.SIGCONT)
    _, components = wait_for(lambda: (h := _health(pipeline))[0] == 200 and h, 60, what="/health up again")
    assert components["pipeline"] == "up"


def test_a_failure_inside_message_handling_is_dead_lettered_as_internal_error(pipeline, monkeypatch):
    # No payload is known to break ingest any more, so a bug is injected into the verdict; the rest is
    # real: ingest's callback, its Kafka producer, the stream worker and the dead_letters table.
    from confluent_kafka import Producer
    from paho.mqtt.client import MQTTMessage

    from ingest import service as ingest_service

    device = pipeline.register_device("home")

    def broken_judge(*_args, **_kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ingest_service, "judge", broken_judge)
    ingest = ingest_service.IngestService(pipeline.settings, ingest_password="unused")
    ingest._producer = Producer({"bootstrap.servers": pipeline.settings.kafka_bootstrap, "acks": "all"})
    poison = MQTTMessage(mid=1, topic=f"devices/{device.device_id}/telemetry".encode())
    poison.payload, poison.qos = b'{"seq": 1}', 1

    ingest._on_message(None, None, poison)  # returns: nothing escapes to paho's network thread
    assert ingest._producer.flush(10) == 0

    dead = wait_for(lambda: pipeline.dead_letters(device.device_id), 60, what="the internal_error dead letter")
    assert [(reason, detail) for reason, detail in dead] == [
        ("internal_error", "ingest could not handle this message: RecursionError: maximum recursion depth exceeded")]
