"""Incidents reach the incidents topic through the live pipeline, once per episode."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.e2e.support import DevicePublisher, message, minutes_ago
from vigil.topics import INCIDENTS

pytestmark = pytest.mark.infra


def _incidents_of(settings, device_id: str, wait_s: float) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"test-{time.time()}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(INCIDENTS, timeout=10).topics[INCIDENTS].partitions
        consumer.assign([TopicPartition(INCIDENTS, p, 0) for p in partitions])
        found, deadline = [], time.monotonic() + wait_s
        while time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is not None and not record.error():
                incident = json.loads(record.value())
                if incident["device_id"] == device_id:
                    found.append(incident)
        return found
    finally:
        consumer.close()


def test_a_leak_lasting_twenty_minutes_opens_one_water_damage_incident(pipeline):
    device = pipeline.register_device("home", location="kitchen")
    start = minutes_ago(30)
    with DevicePublisher(pipeline.settings, device) as pub:
        for minute in range(25):  # wet for 25 minutes, four readings a minute
            readings = [(start + timedelta(minutes=minute, seconds=s), "water_leak", 1) for s in (0, 15, 30, 45)]
            pub.publish(message(device.device_id, minute + 1, readings))

    incidents = _incidents_of(pipeline.settings, device.device_id, wait_s=20)

    assert [(i["kind"], i["member_id"]) for i in incidents] == [("water_damage", device.member_id)]
    assert incidents[0]["started_at_ms"] == int(start.timestamp() * 1000)
    assert incidents[0]["evidence"]
