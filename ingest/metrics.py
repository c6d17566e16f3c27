"""Ingest counters, exported for Prometheus."""

from prometheus_client import Counter

MESSAGES = Counter("vigil_ingest_messages", "MQTT messages judged by ingest", ["outcome"])
READINGS = Counter("vigil_ingest_readings", "Readings judged by ingest", ["outcome"])
DEAD_LETTERS = Counter("vigil_ingest_dead_letters", "Messages and readings sent to the dead letters",
                       ["reason"])
