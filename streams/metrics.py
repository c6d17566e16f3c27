"""Stream-worker counters, exported for Prometheus."""

from prometheus_client import Counter, Histogram

READINGS_STORED = Counter("vigil_streams_readings_stored", "Readings inserted into PostgreSQL")
BATCH_SECONDS = Histogram("vigil_streams_store_batch_seconds", "Time to store one batch of records")
STORE_RETRIES = Counter("vigil_streams_store_retries", "Failed database writes that were retried")
ALERT_CHANGES = Counter("vigil_streams_alert_changes", "Alert events emitted", ["type", "change"])
INCIDENTS = Counter("vigil_streams_incidents", "Incidents opened", ["kind"])
READINGS_TOO_LATE = Counter("vigil_streams_readings_too_late",
                            "Readings older than the lateness allowance: stored, not judged")
DETECT_ERRORS = Counter("vigil_streams_detect_errors", "Device batches whose judgement raised an error")
COMMIT_HOLES = Counter("vigil_streams_commit_holes",
                       "Checks that found a partition's next offset unacknowledged behind later ones")
