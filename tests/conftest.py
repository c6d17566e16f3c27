"""Test-wide settings: a private set of ports, database and state folder for the test run.

The environment is set before anything reads the settings, and child processes (ingest, the
stream worker, the API) inherit it, so the whole suite talks to its own stack.
"""

from __future__ import annotations

import os

TEST_ENV = {
    "VIGIL_MQTT_URL": "mqtt://127.0.0.1:11884",
    "VIGIL_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
    "DATABASE_URL": os.environ.get("VIGIL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil_test"),
    "VIGIL_API_PORT": "18080",
    "VIGIL_ADMIN_TOKEN": "test-admin-token-0123456789",
    # One fixed place for every checkout, so a run stops what an interrupted earlier run left behind.
    "VIGIL_STATE_DIR": os.environ.get("VIGIL_TEST_STATE_DIR", "/tmp/vigil-test-stack"),
    "VIGIL_INGEST_METRICS_PORT": "19101",
    "VIGIL_STREAMS_METRICS_PORT": "19102",
    "VIGIL_TELEMETRY_PARTITIONS": "4",
    "VIGIL_LOG_LEVEL": "INFO",
}
os.environ.update(TEST_ENV)
for _name in ("VIGIL_MQTT_ADMIN_PASSWORD", "VIGIL_MQTT_INGEST_PASSWORD", "VIGIL_CLAIMS_WEBHOOK_URL"):
    os.environ.pop(_name, None)
