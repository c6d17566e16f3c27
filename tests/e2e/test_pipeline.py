"""Telemetry through the real broker, Kafka, stream worker and database, seen through the API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.e2e.support import DevicePublisher, message, minutes_ago, now, wait_for

pytestmark = pytest.mark.infra


def test_published_readings_are_stored_and_served(pipeline):
    device = pipeline.register_device("wearable")
    stamp = now().replace(microsecond=0)
    with DevicePublisher(pipeline.settings, device) as pub:
        for seq in range(1, 6):
            code = pub.publish(message(device.device_id, seq, [(stamp - timedelta(seconds=10 * seq), "heart_rate",
                                                                 60 + seq), (stamp, "steps", seq)]))
            assert not code.is_failure
    wait_for(lambda: pipeline.stored_count(device.device_id) == 5, 60, what="5 stored messages")
    response = pipeline.api.get(f"/api/v1/devices/{device.device_id}/readings", params={"metric": "heart_rate"})
    assert response.status_code == 200
    values = sorted(r["value"] for r in response.json())
    assert values == [61, 62, 63, 64, 65]


def test_broker_refuses_a_device_publishing_on_another_devices_topic(pipeline):
    mine = pipeline.register_device("home")
    other = pipeline.register_device("home")
    with DevicePublisher(pipeline.settings, mine) as pub:
        code = pub.publish(message(other.device_id, 1, [(now(), "temperature", 21)]),
                           topic=f"devices/{other.device_id}/telemetry")
        assert code.is_failure and code.value == 0x87  # Not authorized
        assert not pub.publish(message(mine.device_id, 1, [(now(), "temperature", 21)])).is_failure
    wait_for(lambda: pipeline.stored_count(mine.device_id) == 1, 60, what="the device's own message")
    assert pipeline.stored_count(other.device_id) == 0


def test_bad_input_is_dead_lettered_with_reasons_while_good_messages_flow(pipeline):
    device = pipeline.register_device("wearable")
    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish_raw(b"{not json")
        pub.publish(message("someone-else", 2, [(now(), "heart_rate", 70)]))
        pub.publish_raw(json.dumps(message(device.device_id, 3, [(now(), "heart_rate", 70)] * 2)).encode()
                        + b" " * (64 * 1024))
        pub.publish(message(device.device_id, 4, [(now(), "heart_rate", 70), (now(), "heart_rate", 400),
                                                  (now() + timedelta(minutes=10), "heart_rate", 71),
                                                  (now(), "blood_alcohol", 0.1)]))
        pub.publish(message(device.device_id, 5, [(now(), "heart_rate", 72)]))
    wait_for(lambda: pipeline.stored_count(device.device_id) == 2, 60, what="the two good messages")
    reasons = wait_for(lambda: [r for r, _ in pipeline.dead_letters(device.device_id)]
                       if len(pipeline.dead_letters(device.device_id)) >= 6 else None, 60, what="6 dead letters")
    assert sorted(reasons) == sorted(["invalid_json", "device_mismatch", "oversize", "out_of_range",
                                      "future_ts", "unknown_metric"])
    kept = pipeline.query("SELECT value FROM readings WHERE device_id = %s ORDER BY value", device.device_id)
    assert [v for (v,) in kept] == [70, 72]
    details = dict(pipeline.dead_letters(device.device_id))
    assert "readings.1.value" in details["out_of_range"]


def test_a_message_sent_twice_is_stored_once(pipeline):
    device = pipeline.register_device("home")
    body = message(device.device_id, 7, [(now(), "humidity", 40), (now(), "temperature", 19)])
    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish(body)
        pub.publish(body)
        pub.publish(message(device.device_id, 8, [(now(), "humidity", 41)]))
    wait_for(lambda: pipeline.stored_count(device.device_id) == 2, 60, what="two distinct messages")
    rows = pipeline.query("SELECT count(*) FROM readings WHERE device_id = %s", device.device_id)
    assert rows[0][0] == 3


def _alerts(pipeline, device_id: str) -> list[dict]:
    response = pipeline.api.get("/api/v1/alerts", params={"device_id": device_id})
    assert response.status_code == 200
    return response.json()


def test_a_leak_raises_one_water_leak_alert(pipeline):
    device = pipeline.register_device("home", location="kitchen")
    start = minutes_ago(10)
    with DevicePublisher(pipeline.settings, device) as pub:
        for seq in range(1, 31):  # wet for 5 minutes, one reading every 10 s
            pub.publish(message(device.device_id, seq, [(start + timedelta(seconds=10 * seq), "water_leak", 1)]))
    alerts = wait_for(lambda: _alerts(pipeline, device.device_id), 60, what="a water_leak alert")
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["type"], alert["severity"], alert["status"]) == ("water_leak", "high", "open")
    first_wet = start + timedelta(seconds=10)
    assert alert["triggered_at"].startswith((first_wet + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert alert["evidence"]["rule"] == "water_leak"


def test_tachycardia_at_rest_raises_one_alert(pipeline):
    device = pipeline.register_device("wearable")
    start = minutes_ago(20).replace(second=0, microsecond=0)
    with DevicePublisher(pipeline.settings, device) as pub:
        for minute in range(14):
            readings = []
            for second in (0, 20, 40):
                ts = start + timedelta(minutes=minute, seconds=second)
                readings += [(ts, "heart_rate", 134), (ts, "steps", 0), (ts, "worn", 1)]
            pub.publish(message(device.device_id, minute + 1, readings))
    alerts = wait_for(lambda: _alerts(pipeline, device.device_id), 60, what="a tachycardia alert")
    assert [(a["type"], a["severity"]) for a in alerts] == [("tachycardia", "high")]
    # The condition is met at the end of the 10th whole minute of the episode.
    expected = start + timedelta(minutes=10)
    assert alerts[0]["triggered_at"].startswith(expected.strftime("%Y-%m-%dT%H:%M:%S"))
    assert len(alerts[0]["evidence"]["minutes"]) == 10
