"""The retention job deletes telemetry past the window and nothing inside it."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from vigil.storage.retention import trim
from vigil.storage.schema import ensure_database, migrate

pytestmark = pytest.mark.infra
URL = "postgresql://postgres@127.0.0.1:5432/vigil_retention_test"


@pytest.fixture
def conn():
    with psycopg.connect(make_conninfo(URL, dbname="postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier("vigil_retention_test")))
    ensure_database(URL)
    migrate(URL, retention_days=30)
    with psycopg.connect(URL, autocommit=True) as connection:
        yield connection


def test_rows_older_than_the_window_go_and_younger_ones_stay(conn):
    for days_old, seq in ((31, 1), (29, 2)):
        conn.execute("INSERT INTO messages (device_id, seq, sent_at, received_at, readings) "
                     "VALUES ('d1', %s, now() - make_interval(days => %s), now() - make_interval(days => %s), 1)",
                     (seq, days_old, days_old))
        conn.execute("INSERT INTO readings (device_id, ts, metric, value, seq) "
                     "VALUES ('d1', now() - make_interval(days => %s), 'battery', 50, %s)", (days_old, seq))
        conn.execute("INSERT INTO dead_letters (fingerprint, received_at, reason, detail, topic) "
                     "VALUES (%s, now() - make_interval(days => %s), 'schema', 'x', 't')", (str(seq), days_old))

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
