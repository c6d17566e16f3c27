"""The bridge's consumer of `vigil.incidents` against a real Kafka-protocol broker (a private Tansu).

A redelivered incident is stored once; records that could never be stored are logged, counted and
skipped, and the consumer goes on; committed offsets mean a restarted bridge does not read them again.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Producer

from stack import kafka
from tests.integration.claims_peers import BridgeProcess, bridge_env, incident_event
from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import free_port, sql, wait_for
from vigil.settings import Settings
from vigil.topics import INCIDENTS

pytestmark = pytest.mark.infra

STATE = Path(os.environ.get("VIGIL_STATE_DIR", "/tmp/vigil-test-stack")) / "claims-consumer"


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("claims_consumer")


@pytest.fixture(scope="module")
def bootstrap() -> str:
    """A private Tansu; one left behind by an interrupted run is stopped first (its state folder is fixed)."""
    settings = Settings(_env_file=None, VIGIL_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}", VIGIL_STATE_DIR=str(STATE))
    kafka.down(settings)
    kafka.up(settings)
    yield settings.kafka_bootstrap
    kafka.down(settings)
    shutil.rmtree(STATE, ignore_errors=True)


def publish(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(INCIDENTS, key=key.encode(), value=value)
    assert producer.flush(10) == 0


def incident(member_id: str) -> bytes:
    started = datetime.now(UTC) - timedelta(minutes=30)
    return incident_event(member_id, f"dev-{member_id}", "0b6c5c4e-2b1a-4a57-9f0e-8d7c6b5a4f31", started_at=started,
                          detected_at=started).model_dump_json().encode()


def stored(database_url: str) -> list[str]:
    return [row[0] for row in sql(database_url, "SELECT member_id FROM incidents ORDER BY member_id")]


def test_a_redelivered_incident_is_stored_once_and_garbage_is_skipped(database_url, bootstrap, tmp_path):
    env = bridge_env(database_url, kafka=bootstrap, CLAIM_SETTLE_S=3600, STATE_DIR=tmp_path / "state")
    first = BridgeProcess("first", env, tmp_path).start()
    try:
        wait_for(lambda: "incident consumer subscribed" in first.log_text(), 30, what="the consumer to subscribe")
        # Every worker is completing rounds (the consumer's reach Kafka): the container healthcheck's file.
        wait_for((tmp_path / "state" / "claims.alive").exists, 10, what="the liveness file")
        once = incident("k-once")
        nan = once.replace(b'"lasted_s":1200.0', b'"lasted_s":NaN').replace(b"k-once", b"k-nan")
        not_a_uuid = incident("k-id").replace(b'"alert_id":"0b6c5c4e-2b1a-4a57-9f0e-8d7c6b5a4f31"',
                                              b'"alert_id":"alert-1"')
        publish(bootstrap, [("k-once", once), ("k-once", once), ("k-junk", b"not json at all"), ("k-nan", nan),
                            ("k-id", not_a_uuid)])
        publish(bootstrap, [("k-after", incident("k-after"))])

        wait_for(lambda: stored(database_url) == ["k-after", "k-once"], 30, what="the two incidents stored")
        log = first.log_text()
        assert log.count("skipping malformed incident") == 3
        assert "evidence: Out of range float values are not JSON compliant" in log
        assert "alert_id: 'alert-1' is not a UUID" in log
        assert first.running()
        [(due, detected)] = sql(database_url, "SELECT build_due_at, detected_at FROM incidents WHERE member_id = "
                                "'k-once'")
        assert due == detected + timedelta(seconds=3600)
    finally:
        assert first.stop() == 0
    assert "Traceback" not in first.log_text(), first.log_text()[-4000:]

    # The offsets were committed after the rows: a new bridge in the group reads only what is new.
    second = BridgeProcess("second", env, tmp_path).start()
    try:
        wait_for(lambda: "incident consumer subscribed" in second.log_text(), 30, what="the second consumer")
        publish(bootstrap, [("k-later", incident("k-later"))])
        wait_for(lambda: "k-later" in stored(database_url), 30, what="the later incident")
        assert "skipping malformed incident" not in second.log_text()
        assert stored(database_url) == ["k-after", "k-later", "k-once"]
    finally:
        second.stop()
