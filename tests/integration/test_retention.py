"""The retention job deletes telemetry past the window and nothing inside it, by the window as it is
set now; and the scheduler's device_offline job stamps the file its healthcheck reads."""

from __future__ import annotations

import os
import time
from urllib.parse import urlparse

import psycopg
import pytest
from confluent_kafka import Producer

from scheduler.jobs import ALIVE_FILE, check_offline, trim_telemetry
from tests.integration.databases import own_database_url, recreate
from vigil.settings import Settings
from vigil.storage.retention import trim
from vigil.storage.schema import migrate

pytestmark = pytest.mark.infra
URL = own_database_url("retention")


@pytest.fixture
def conn():
    recreate(URL)
    migrate(URL, retention_days=30, timescale="off")
    with psycopg.connect(URL, autocommit=True) as connection:
        yield connection


def _store(conn: psycopg.Connection, days_old: int, seq: int) -> None:
    conn.execute("INSERT INTO messages (device_id, seq, sent_at, received_at, readings) "
                 "VALUES ('d1', %s, now() - make_interval(days => %s), now() - make_interval(days => %s), 1)",
                 (seq, days_old, days_old))
    conn.execute("INSERT INTO readings (device_id, ts, metric, value, seq) "
                 "VALUES ('d1', now() - make_interval(days => %s), 'battery', 50, %s)", (days_old, seq))
    conn.execute("INSERT INTO dead_letters (fingerprint, received_at, reason, detail, topic) "
                 "VALUES (%s, now() - make_interval(days => %s), 'schema', 'x', 't')", (str(seq), days_old))


def _kept(conn: psycopg.Connection) -> dict[str, list]:
    return {
        "readings": [r[0] for r in conn.execute("SELECT seq FROM readings ORDER BY seq")],
        "messages": [r[0] for r in conn.execute("SELECT seq FROM messages ORDER BY seq")],
        "dead_letters": [r[0] for r in conn.execute("SELECT fingerprint FROM dead_letters ORDER BY fingerprint")],
        "readings_1m": [r[0] for r in conn.execute("SELECT n FROM readings_1m")],
    }


def test_rows_older_than_the_window_go_and_younger_ones_stay(conn):
    for days_old, seq in ((31, 1), (29, 2)):
        _store(conn, days_old, seq)

    deleted = trim(conn, retention_days=30, timescale=False)

    assert deleted == {"readings": 1, "messages": 1, "dead_letters": 1}
    assert conn.execute("SELECT seq FROM readings").fetchall() == [(2,)]
    assert conn.execute("SELECT seq FROM messages").fetchall() == [(2,)]
    assert conn.execute("SELECT fingerprint FROM dead_letters").fetchall() == [("2",)]


def test_on_timescaledb_readings_are_left_to_the_retention_policy(conn):
    conn.execute("INSERT INTO readings (device_id, ts, metric, value, seq) "
                 "VALUES ('d1', now() - interval '40 days', 'battery', 50, 1)")

    deleted = trim(conn, retention_days=30, timescale=True)

    assert "readings" not in deleted
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)


def test_the_retention_job_follows_the_setting_as_it_is_now_not_as_it_was_at_migration(conn):
    """The schema was made with 30 days; the scheduler is then started with 15, later with 5."""
    for days_old, seq in ((20, 1), (10, 2), (1, 3)):
        _store(conn, days_old, seq)

    trim_telemetry(Settings(DATABASE_URL=URL, VIGIL_RETENTION_DAYS=15))
    assert _kept(conn) == {"readings": [2, 3], "messages": [2, 3], "dead_letters": ["2", "3"],
                           "readings_1m": [1, 1]}

    trim_telemetry(Settings(DATABASE_URL=URL, VIGIL_RETENTION_DAYS=5))
    assert _kept(conn) == {"readings": [3], "messages": [3], "dead_letters": ["3"], "readings_1m": [1]}


def test_device_offline_runs_stamp_the_liveness_file_only_when_they_judged(conn, tmp_path):
    # No device is registered, so the run publishes nothing: the producer is never used.
    producer = Producer({"bootstrap.servers": "127.0.0.1:9", "client.id": "vigil-scheduler-test", "log_level": 0})
    state = tmp_path / "state"

    check_offline(Settings(DATABASE_URL=URL, VIGIL_STATE_DIR=str(state)), producer)
    stamped = (state / ALIVE_FILE).stat().st_mtime
    assert time.time() - stamped < 30

    # A database that cannot be reached: the run fails (and is survived), the stamp stays as it was.
    os.utime(state / ALIVE_FILE, (stamped - 120, stamped - 120))
    unreachable = urlparse(URL)._replace(netloc="postgres@127.0.0.1:1").geturl()
    check_offline(Settings(DATABASE_URL=unreachable, VIGIL_STATE_DIR=str(state)), producer)
    assert (state / ALIVE_FILE).stat().st_mtime == stamped - 120
