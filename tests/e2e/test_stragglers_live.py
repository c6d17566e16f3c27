"""Issue 10, item 7, through the real pipeline: a message more than the lateness allowance behind its
device, in a batch of its own, is judged against the stored readings of its window.

A 13-minute bradycardia episode at 35 bpm, worn, in 1-minute messages of 24 readings; the message of
the episode's 6th minute is published after the three that followed it, once those are stored (so
in a later batch: a device's records are judged in order, one batch at a time). It is then 3 minutes
behind the device's watermark, past the 2-minute allowance. In-order delivery raises the alert when
the 10th low minute is complete and clears it after 5 minutes back at 70.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from tests.e2e.support import DevicePublisher, message, minutes_ago, wait_for

pytestmark = pytest.mark.infra

BEFORE, LOW, AFTER = 5, 13, 8
LATE = BEFORE + 5


def _judged_late(pipeline) -> float:
    text = httpx.get(f"http://127.0.0.1:{pipeline.settings.streams_metrics_port}/metrics", timeout=5).text
    found = re.search(r"^vigil_streams_readings_judged_late_total (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_message_three_minutes_late_in_its_own_batch_completes_the_episode(pipeline):
    device = pipeline.register_device("wearable")
    start = minutes_ago(40).replace(second=0, microsecond=0)
    rates = [70] * BEFORE + [35] * LOW + [70] * AFTER
    messages = []
    for minute, rate in enumerate(rates):
        readings = []
        for second in (5, 20, 35, 50):
            ts = start + timedelta(minutes=minute, seconds=second)
            readings += [(ts, "heart_rate", rate), (ts, "spo2", 97), (ts, "steps", 0), (ts, "worn", 1),
                         (ts, "skin_temp", 33), (ts, "battery", 80)]
        messages.append(message(device.device_id, minute + 1, readings))
    judged_late_before = _judged_late(pipeline)

    with DevicePublisher(pipeline.settings, device) as pub:
        first = [m for i, m in enumerate(messages[:LATE + 4]) if i != LATE]
        for body in first:
            pub.publish(body)
        wait_for(lambda: pipeline.stored_count(device.device_id) == len(first), 60, what="the first messages")
        pub.publish(messages[LATE])
        wait_for(lambda: pipeline.stored_count(device.device_id) == len(first) + 1, 60, what="the straggler")
        for body in messages[LATE + 4:]:
            pub.publish(body)

    def cleared() -> list[dict]:
        alerts = pipeline.api.get("/api/v1/alerts", params={"device_id": device.device_id}).json()
        return alerts if alerts and all(a["cleared_at"] for a in alerts) else []

    alerts = wait_for(cleared, 60, what="the bradycardia alert, raised and cleared")
    assert [(a["type"], a["severity"], a["status"]) for a in alerts] == [("bradycardia", "high", "resolved")]
    # As in order: met when the 10th low minute is complete, cleared after 5 minutes back at 70.
    met = start + timedelta(minutes=BEFORE + 10)
    assert alerts[0]["triggered_at"].startswith(met.strftime("%Y-%m-%dT%H:%M:%S"))
    back = start + timedelta(minutes=BEFORE + LOW + 5)
    assert alerts[0]["cleared_at"].startswith(back.strftime("%Y-%m-%dT%H:%M:%S"))
    # The straggler's 24 readings were judged from the stored ones, not counted too late.
    assert _judged_late(pipeline) - judged_late_before >= 24
