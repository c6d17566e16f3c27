"""Kafka topic names and partition counts: the meeting points between services."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


TELEMETRY = "vigil.telemetry"
ALERTS = "vigil.alerts"
DEAD_LETTERS = "vigil.deadletters"
# Incidents the rules open (a leak lasting 20 minutes, a fall without getting up...), keyed by
# member id: what the claims bridge turns into pre-filled claims.
INCIDENTS = "vigil.incidents"
# Care-plan changes keyed by member id, compacted: the latest plan of every member.
CARE_PLANS = "vigil.care-plans"
# Ingest's heartbeats (keyed by `ingest-<instance>`), stored by the stream worker: proof that the
# pipeline was live, so that `device_offline` never mistakes Vigil's own downtime for a device's.
HEARTBEATS = "vigil.heartbeats"
HEARTBEAT_INTERVAL_S = 5
# A longer pause between stored heartbeats means Vigil, or part of it, was down.
HEARTBEAT_GAP_S = 30
# The longest a consumer on the path from a reading to an alert (the stream worker, the alert
# consumer) lets the broker hold a fetch that has nothing yet. Tansu holds a fetch for its whole
# wait while any partition in it is empty, and on a quiet fleet some always are, so this is added to
# every alert's latency; the price is up to 20 empty fetch answers a second per consumer. Measured by
# `vigil bench` (one run each): Faust's 1500 ms gave publish -> alert p99 850 ms idle; 20 ms gave
# 103 ms, with Tansu at 12 % of a core when idle; 50 ms gave 99 ms, with Tansu at 7 %.
HOT_PATH_FETCH_WAIT_MS = 50
# MQTT, not Kafka: each ingest instance publishes a probe to its own topic here and sends a heartbeat
# only when the probe has come back through the broker and its message loop (`ingest/probe.py`).
INGEST_PROBE_FILTER = "vigil/ingest-probe/+"


def ingest_probe_topic(instance: str) -> str:
    """The MQTT topic of one ingest instance's loop probe."""
    return f"vigil/ingest-probe/{instance}"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic Vigil creates explicitly, with its partition count."""
    return [
        TopicSpec(TELEMETRY, settings.telemetry_partitions),
        TopicSpec(ALERTS, 4),
        TopicSpec(DEAD_LETTERS, 1),
        TopicSpec(INCIDENTS, 4),
        TopicSpec(CARE_PLANS, 1, compacted=True),
        TopicSpec(HEARTBEATS, 1),
    ]
