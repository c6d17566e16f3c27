"""Test-wide settings: a private set of ports, database and state folder for the test run.

The environment is set before anything reads the settings, and child processes (ingest, the
stream worker, the API) inherit it, so the whole suite talks to its own stack.
"""

from __future__ import annotations

import os

# Two checkouts on one machine run their suites side by side by giving each its own offset, database
# and state folder (VIGIL_TEST_PORT_OFFSET, VIGIL_TEST_DATABASE_URL, VIGIL_TEST_STATE_DIR).
_OFFSET = int(os.environ.get("VIGIL_TEST_PORT_OFFSET", "0"))

TEST_ENV = {
    "VIGIL_MQTT_URL": f"mqtt://127.0.0.1:{11884 + _OFFSET}",
    "VIGIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{19092 + _OFFSET}",
    "DATABASE_URL": os.environ.get("VIGIL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil_test"),
    "VIGIL_API_PORT": str(18080 + _OFFSET),
    "VIGIL_ADMIN_TOKEN": "test-admin-token-0123456789",
    # One fixed place for every checkout, so a run stops what an interrupted earlier run left behind.
    "VIGIL_STATE_DIR": os.environ.get("VIGIL_TEST_STATE_DIR", "/tmp/vigil-test-stack"),
    "VIGIL_INGEST_METRICS_PORT": str(19101 + _OFFSET),
    "VIGIL_STREAMS_METRICS_PORT": str(19102 + _OFFSET),
    "VIGIL_SCHEDULER_METRICS_PORT": str(19103 + _OFFSET),
    "VIGIL_CLAIMS_METRICS_PORT": str(19104 + _OFFSET),
    "VIGIL_TELEMETRY_PARTITIONS": "4",
    "VIGIL_LOG_LEVEL": "INFO",
}
os.environ.update(TEST_ENV)
for _name in ("VIGIL_MQTT_ADMIN_PASSWORD", "VIGIL_MQTT_INGEST_PASSWORD", "VIGIL_CLAIMS_WEBHOOK_URL",
              "VIGIL_CLAIMS_WEBHOOK_SECRET"):
    os.environ.pop(_name, None)
