"""A care plan changed through the API takes effect on the running stream, without a restart."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from tests.e2e.support import DevicePublisher, message, minutes_ago, wait_for

pytestmark = pytest.mark.infra


def _leak(pipeline, device) -> None:
    start = minutes_ago(6)
    with DevicePublisher(pipeline.settings, device) as pub:
        for seq in range(1, 13):  # wet for two minutes, a reading every 10 s
            pub.publish(message(device.device_id, seq, [(start + timedelta(seconds=10 * seq), "water_leak", 1)]))


def _alerts(pipeline, device_id: str) -> list[dict]:
    return pipeline.api.get("/api/v1/alerts", params={"device_id": device_id}).json()


def test_a_rule_switched_off_in_a_care_plan_stops_alerting_for_that_member_only(pipeline):
    quiet_member = pipeline.register_member(line="home")
    response = pipeline.api.put(f"/api/v1/members/{quiet_member}/care_plan",
                                json={"overrides": {"water_leak": {"enabled": False}}, "note": "sensor under sink"})
    assert response.status_code == 200, response.text
    time.sleep(2)  # the worker follows the care-plans topic
    quiet = pipeline.register_device("home", member_id=quiet_member)
    control = pipeline.register_device("home")

    _leak(pipeline, quiet)
    _leak(pipeline, control)

    wait_for(lambda: _alerts(pipeline, control.device_id), 60, what="the control device's leak alert")
    wait_for(lambda: pipeline.stored_count(quiet.device_id) == 12, 60, what="the quiet device's messages")
    time.sleep(3)
    assert _alerts(pipeline, quiet.device_id) == []


def test_a_care_plan_with_a_negative_duration_is_refused_naming_the_field(pipeline):
    member = pipeline.register_member()
    response = pipeline.api.put(f"/api/v1/members/{member}/care_plan",
                                json={"overrides": {"tachycardia": {"tiers.0.minutes": -5}}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "overrides.tachycardia.tiers.0.minutes"
