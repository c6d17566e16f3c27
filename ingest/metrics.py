"""Ingest counters, exported for Prometheus.

The children counted for every message are looked up once here: `labels()` takes a lock and a
dictionary look-up each time, a cost on every message.
"""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("vigil_ingest_messages", "MQTT messages judged by ingest", ["outcome"])
READINGS = Counter("vigil_ingest_readings", "Readings judged by ingest", ["outcome"])
ACKNOWLEDGED = Counter("vigil_ingest_acknowledged_messages",
                       "MQTT messages acknowledged to the broker, each once Kafka had all of its records")
DEAD_LETTERS = Counter("vigil_ingest_dead_letters", "Messages and readings sent to the dead letters",
                       ["reason"])
ACCEPTED_MESSAGES = MESSAGES.labels("accepted")
REJECTED_MESSAGES = MESSAGES.labels("rejected")
ACCEPTED_READINGS = READINGS.labels("accepted")
REJECTED_READINGS = READINGS.labels("rejected")
PROBE_ROUND_TRIP = Histogram("vigil_ingest_probe_round_trip_seconds",
                             "From publishing a loop probe to its return through ingest's message loop",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
PROBE_RETURNED = Gauge("vigil_ingest_probe_returned_timestamp_seconds",
                       "When a loop probe last came back (each return sends a pipeline heartbeat)")
