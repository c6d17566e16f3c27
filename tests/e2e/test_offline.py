"""`device_offline` through the real pipeline: heartbeats, liveness, the scheduler's job, the alerts API."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

import pytest

from tests.e2e.support import DeviceCredentials, DevicePublisher, ServiceProcess, message, now, wait_for

pytestmark = pytest.mark.infra

INTERVAL_S = 5  # silent for more than 15 s is offline


def _register_fast_device(pipeline) -> DeviceCredentials:
    member_id = pipeline.register_member()
    device_id = f"t-off-{uuid.uuid4().hex[:10]}"
    response = pipeline.api.post("/api/v1/devices", json={"device_id": device_id, "kind": "home",
                                                          "member_id": member_id, "report_interval_s": INTERVAL_S})
    assert response.status_code == 201, response.text
    data = response.json()
    return DeviceCredentials(device_id, data["mqtt_username"], data["mqtt_password"], member_id)


def _offline_alerts(pipeline, device_id: str) -> list[dict]:
    response = pipeline.api.get("/api/v1/alerts", params={"device_id": device_id, "type": "device_offline"})
    assert response.status_code == 200, response.text
    return response.json()


def _last_message_at(pipeline, device_id: str) -> datetime | None:
    rows = pipeline.query("SELECT last_message_at FROM device_liveness WHERE device_id = %s", device_id)
    return rows[0][0] if rows else None


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_silent_device_goes_offline_and_its_next_message_clears_it(pipeline):
    threshold = timedelta(seconds=3 * INTERVAL_S)
    # Ingest's heartbeats reach the database: the pipeline is provably live.
    wait_for(lambda: pipeline.query("SELECT 1 FROM pipeline_heartbeats WHERE last_at > now() - interval '15 s'"),
             30, what="a stored pipeline heartbeat")
    device = _register_fast_device(pipeline)
    scheduler = ServiceProcess("scheduler", "scheduler", pipeline.settings.state_dir / "logs")
    try:
        with DevicePublisher(pipeline.settings, device) as pub:
            pub.publish(message(device.device_id, 1, [(now(), "temperature", 21)]))
            heard = wait_for(lambda: _last_message_at(pipeline, device.device_id), 30, what="the device's liveness")
            # The scheduler judges at start and then every 15 s: starting it once the device has been
            # silent for 3 intervals spares the test a wait for the next run.
            time.sleep(max(0.0, (heard + threshold - now()).total_seconds()) + 0.5)
            scheduler.start()

            [alert] = wait_for(lambda: _offline_alerts(pipeline, device.device_id), 20, what="a device_offline alert")
            # Medium alerts tell the care manager at once, so the ladder may already have escalated it.
            assert (alert["type"], alert["severity"]) == ("device_offline", "medium")
            assert alert["status"] in ("open", "escalated")
            assert abs(_utc(alert["triggered_at"]) - (heard + threshold)) < timedelta(milliseconds=2)
            evidence = alert["evidence"]
            assert evidence["parameters"] == {"silent_intervals": 3, "report_interval_s": INTERVAL_S,
                                              "threshold_s": 3 * INTERVAL_S}
            assert _utc(evidence["last_message_at"]) == heard
            assert _utc(evidence["pipeline_live_since"]) < heard

            pub.publish(message(device.device_id, 2, [(now(), "temperature", 21)]))
        back = wait_for(lambda: (t := _last_message_at(pipeline, device.device_id)) and t > heard and t, 30,
                        what="the second message")
        # The next run, 15 s after the first, sees the message and clears the alert.
        resolved = wait_for(lambda: [a for a in _offline_alerts(pipeline, device.device_id)
                                     if a["status"] == "resolved"], 25, what="the alert to clear")
        assert [a["id"] for a in resolved] == [alert["id"]]
        assert abs(_utc(resolved[0]["cleared_at"]) - back) < timedelta(milliseconds=2)
    finally:
        scheduler.stop()
    # One alert for the first silence: every run saw it open and raised nothing more. (The device is
    # silent again after its second message, so a second episode may have begun since.)
    later = [a for a in _offline_alerts(pipeline, device.device_id) if a["id"] != alert["id"]]
    assert all(_utc(a["triggered_at"]) >= back + threshold - timedelta(milliseconds=2) for a in later), later
    assert "Traceback" not in scheduler.log_text()
