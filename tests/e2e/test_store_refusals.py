"""What the stream worker writes can never be jammed by content, and a reused seq is never lost unseen.

Issue 10, item 3: a JSON key containing NUL ended up in a dead letter's `detail`, PostgreSQL
refused it, and the worker retried that batch forever, so no later refusal was ever recorded.
Item 4: the same (device_id, seq) sent again with other readings was dropped silently.

Besides MQTT (where ingest may clean things first), records are produced straight to the Kafka
topics, as anyone with a Kafka client could: the worker must hold whatever ingest does.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Producer

from tests.e2e.support import DevicePublisher, message, minutes_ago, now, wait_for
from vigil.topics import DEAD_LETTERS, TELEMETRY

pytestmark = pytest.mark.infra


def _produce(pipeline, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """Produce (key, value) records in order, like ingest does (same partitioner), and wait for Kafka."""
    producer = Producer({"bootstrap.servers": pipeline.settings.kafka_bootstrap, "partitioner": "murmur2_random",
                         "enable.idempotence": True, "linger.ms": 20})
    failures = []
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=lambda err, _m: err and failures.append(err))
    assert producer.flush(30) == 0 and not failures, failures


def _letters(pipeline, where: str, *params) -> list[tuple]:
    return pipeline.query(f"SELECT reason, detail, device_id, seq, payload, topic FROM dead_letters WHERE {where} "
                          "ORDER BY id", *params)


def test_a_nul_key_then_a_bad_message_both_reach_the_dead_letters(pipeline):
    device = pipeline.register_device("home")
    nul_key = (b'{"device_id": "%s", "seq": 1, "sent_at": "2026-11-22T10:00:05Z", "\\u0000x": 1, '
               b'"readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "temperature", "value": 21}]}'
               % device.device_id.encode())
    with DevicePublisher(pipeline.settings, device) as pub:
        assert not pub.publish_raw(nul_key).is_failure
        assert not pub.publish_raw(b'{"not": "closed"').is_failure
        pub.publish(message(device.device_id, 2, [(now(), "temperature", 21)]))

    wait_for(lambda: pipeline.stored_count(device.device_id) == 1, 60, what="the good message after the bad ones")
    dead = wait_for(lambda: (rows := pipeline.dead_letters(device.device_id)) and len(rows) >= 2 and rows, 60,
                    what="both dead letters, the second behind the NUL one")
    assert [reason for reason, _ in dead] == ["schema", "invalid_json"]
    assert "x: Extra inputs are not permitted" in dead[0][1] and "\x00" not in dead[0][1]


def test_crafted_dead_letters_on_kafka_cannot_jam_the_store(pipeline):
    marker = f"dl-{uuid.uuid4().hex[:10]}"

    def letter(**changes) -> bytes:
        fields = {"received_at_ms": int(time.time() * 1000), "reason": "schema", "detail": "payload: x",
                  "topic": f"devices/{marker}/telemetry", "device_id": marker, "seq": 1, "payload": "{}"}
        return json.dumps({**fields, **changes}).encode()  # json escapes NUL as \u0000, as pydantic does

    _produce(pipeline, DEAD_LETTERS, [
        (b"", letter(detail='"\x00x": Extra inputs are not permitted', payload='{"\x00x": 1}', seq=1)),
        (b"", letter(topic=f"devices/{marker}/telemetry\x00", reason="nul\x00reason", seq=2)),
        (b"", letter(received_at_ms=10**18, seq=3)),  # refused by PostgreSQL even cleaned
        (b"", f"not json {marker}".encode()),
        (b"", b'{"detail": "\\ud800", "marker": "%s"}' % marker.encode()),
        (b"", None),
        (b"", letter(detail="the one behind them all", seq=4)),
    ])

    rows = wait_for(lambda: (r := _letters(pipeline, "device_id = %s", marker)) and len(r) >= 4 and r, 60,
                    what="the last dead letter, behind the crafted ones")
    assert [(reason, seq) for reason, _, _, seq, _, _ in rows] == [
        ("schema", 1), ("nul\ufffdreason", 2), ("store_refused", 3), ("schema", 4)]
    assert rows[0][1] == '"\ufffdx": Extra inputs are not permitted' and rows[0][4] == '{"\ufffdx": 1}'
    assert rows[1][5] == f"devices/{marker}/telemetry\ufffd"
    assert rows[2][1].startswith("the database refused a 'schema' dead letter: DatetimeFieldOverflow")
    bad = _letters(pipeline, "reason = 'bad_record' AND payload LIKE %s", f"%{marker}%")
    assert [(reason, topic) for reason, _, _, _, _, topic in bad] == [("bad_record", DEAD_LETTERS)] * 2


def test_crafted_telemetry_on_kafka_costs_only_itself(pipeline):
    device_id = f"kt-{uuid.uuid4().hex[:10]}"
    ts = int(minutes_ago(5).timestamp() * 1000)

    def record(seq: int, *, ts_ms: int = ts, metric: str = "battery") -> bytes:
        return json.dumps({"device_id": device_id, "member_id": "m-crafted", "seq": seq, "sent_at_ms": ts,
                           "received_at_ms": ts, "readings": [[ts_ms, metric, 80.0]]}).encode()

    key = device_id.encode()
    _produce(pipeline, TELEMETRY, [
        (key, record(1)),
        (key, record(2, ts_ms=10**17)),  # PostgreSQL refuses the timestamp: a store_refused letter
        (key, record(3, metric="batt\x00ery")),  # PostgreSQL refuses NUL: stored cleaned
        (key, b"not json " + key),  # a bad_record letter
        (key, record(4)),
    ])

    wait_for(lambda: pipeline.stored_count(device_id) == 3, 60, what="the records around the refused ones")
    assert pipeline.query("SELECT seq, metric FROM readings WHERE device_id = %s ORDER BY seq", device_id) == [
        (1, "battery"), (3, "batt\ufffdery"), (4, "battery")]
    refused = _letters(pipeline, "device_id = %s", device_id)
    assert [(reason, seq) for reason, _, _, seq, _, _ in refused] == [("store_refused", 2)]
    assert "DatetimeFieldOverflow" in refused[0][1]
    bad = wait_for(lambda: _letters(pipeline, "reason = 'bad_record' AND payload = %s", f"not json {device_id}"),
                   30, what="the bad_record letter")
    assert bad[0][5] == TELEMETRY


def test_a_seq_sent_again_with_other_readings_is_a_seq_reused_letter_and_the_first_stays(pipeline):
    device = pipeline.register_device("home")
    stamp = minutes_ago(5).replace(microsecond=0)
    first = message(device.device_id, 1, [(stamp, "temperature", 21), (stamp, "humidity", 40)])

    def readings() -> list[tuple]:
        return pipeline.query("SELECT seq, metric, value FROM readings WHERE device_id = %s ORDER BY seq, metric",
                              device.device_id)

    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish(first)
        wait_for(lambda: pipeline.stored_count(device.device_id) == 1, 60, what="the first message")
        # The same message again (another sent_at, the same readings): a redelivery, nothing to say.
        pub.publish({**first, "sent_at": message(device.device_id, 1, [])["sent_at"]})
        pub.publish(message(device.device_id, 2, [(stamp, "temperature", 22)]))
        wait_for(lambda: pipeline.stored_count(device.device_id) == 2, 60, what="the message after the redelivery")
        assert pipeline.dead_letters(device.device_id) == []

        # seq 1 again with other readings: a counter that restarted.
        pub.publish(message(device.device_id, 1, [(stamp, "temperature", 35)]))
        pub.publish(message(device.device_id, 3, [(stamp, "temperature", 23)]))
        wait_for(lambda: pipeline.stored_count(device.device_id) == 3, 60, what="the message after the reused seq")

    dead = wait_for(lambda: _letters(pipeline, "device_id = %s", device.device_id), 30, what="the seq_reused letter")
    [(reason, detail, _, seq, payload, topic)] = dead
    assert (reason, seq, topic) == ("seq_reused", 1, f"devices/{device.device_id}/telemetry")
    assert detail.startswith("seq 1 was stored before with other readings")
    assert json.loads(payload)["readings"] == [[int(stamp.timestamp() * 1000), "temperature", 35.0]]
    assert readings() == [(1, "humidity", 40.0), (1, "temperature", 21.0), (2, "temperature", 22.0),
                          (3, "temperature", 23.0)]
