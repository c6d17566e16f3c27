"""The bench starts each run from tables without the rows earlier runs deleted (the server's autovacuum may be off)."""

from __future__ import annotations

import psycopg
import pytest

from bench.ceilings import TELEMETRY_TABLES, vacuum_telemetry
from tests.integration.databases import fresh_database

pytestmark = pytest.mark.infra


def _dead(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'messages'").fetchone()[0]


def test_vacuum_reclaims_the_rows_a_run_deleted() -> None:
    url = fresh_database("bench_vacuum")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE messages SET (autovacuum_enabled = off)")
        conn.execute("INSERT INTO messages (device_id, seq, sent_at, received_at, readings)"
                     " SELECT 'bench-x-' || n, 1, now(), now(), 1 FROM generate_series(1, 2000) AS n")
        conn.execute("DELETE FROM messages WHERE device_id LIKE 'bench-x-%'")
        conn.execute("SELECT pg_stat_force_next_flush()")
        assert _dead(conn) == 2000

        vacuum_telemetry(url)

        assert _dead(conn) == 0
    assert "readings" in TELEMETRY_TABLES and "messages" in TELEMETRY_TABLES
