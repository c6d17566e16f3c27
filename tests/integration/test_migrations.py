"""The migration on the real (plain) PostgreSQL: VIGIL_TIMESCALE decides the flavour, and a failure
reports PostgreSQL's own error rather than what the cleanup ran into afterwards."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.integration.databases import own_database_url, recreate
from vigil.storage import StorageError
from vigil.storage.schema import migrate, uses_timescale

pytestmark = pytest.mark.infra
URL = own_database_url("migrations")


@pytest.fixture
def fresh_db() -> str:
    recreate(URL)
    return URL


def _server_preloads_timescaledb() -> bool:
    with psycopg.connect(make_conninfo(URL, dbname="postgres")) as conn:
        return "timescaledb" in conn.execute("SHOW shared_preload_libraries").fetchone()[0]


def _relkind(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (name,)).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_off_and_auto_make_plain_readings_on_a_server_without_timescaledb_preloaded(fresh_db, mode) -> None:
    if mode == "auto" and _server_preloads_timescaledb():
        pytest.skip("this server preloads TimescaleDB: auto would rightly choose it")

    applied = migrate(fresh_db, retention_days=30, timescale=mode)

    assert applied[:2] == ["0001_core", "0002_readings"]
    with psycopg.connect(fresh_db) as conn:
        assert _relkind(conn, "readings") == "r"
        assert _relkind(conn, "readings_1m") == "v"
    assert not uses_timescale(fresh_db)
    # Every later start finds the schema current, whatever the retention now is.
    assert migrate(fresh_db, retention_days=7, timescale=mode) == []


def test_on_without_timescaledb_preloaded_stops_with_a_sentence_naming_the_setting(fresh_db) -> None:
    if _server_preloads_timescaledb():
        pytest.skip("this server preloads TimescaleDB")

    with pytest.raises(StorageError) as refused:
        migrate(fresh_db, retention_days=30, timescale="on")

    message = str(refused.value)
    assert "VIGIL_TIMESCALE=on, but" in message
    assert "shared_preload_libraries" in message or "not installed" in message
    with psycopg.connect(fresh_db) as conn:
        assert _relkind(conn, "readings") is None, "nothing is created before the flavour is settled"
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)


def test_on_refuses_a_database_whose_readings_is_already_plain(fresh_db) -> None:
    migrate(fresh_db, retention_days=30, timescale="off")

    with pytest.raises(StorageError, match="VIGIL_TIMESCALE=on, but readings in this database was created on plain"):
        migrate(fresh_db, retention_days=30, timescale="on")


def test_a_failing_step_reports_postgresqls_error_and_the_step(fresh_db) -> None:
    # A table in the way of 0002: PostgreSQL refuses the CREATE TABLE, and says why.
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (x int)")

    with pytest.raises(StorageError) as failed:
        migrate(fresh_db, retention_days=30, timescale="off")

    assert str(failed.value) == (
        'schema migration failed at 0002_readings: relation "readings" already exists; SQLSTATE 42P07')


def test_a_session_ended_by_the_server_mid_migration_reports_why_not_that_the_connection_is_closed(fresh_db):
    """The issue's "must be preloaded" was a FATAL: the server ends the session, and the lock release
    in the cleanup then failed with "the connection is closed", which was all the operator saw. Here
    the server ends the migrating session the same way (pg_terminate_backend) while it waits inside
    the migration."""
    probe = make_conninfo(fresh_db, application_name="vigil-migrate-probe")
    with psycopg.connect(fresh_db, autocommit=True) as blocker, psycopg.connect(fresh_db, autocommit=True) as watcher:
        blocker.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY, "
                        "applied_at timestamptz NOT NULL DEFAULT now())")
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                migrate(probe, retention_days=30, timescale="off")
            except BaseException as e:
                outcome.append(e)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        deadline = time.monotonic() + 20
        pid = None
        while pid is None and time.monotonic() < deadline:
            # From outside the blocker's transaction, which would see one snapshot of the view throughout.
            row = watcher.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'vigil-migrate-probe' "
                                  "AND wait_event_type = 'Lock'").fetchone()
            pid = row[0] if row else time.sleep(0.05)
        assert pid is not None, "the migration never waited on the locked table"
        watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
        worker.join(20)
        blocker.execute("ROLLBACK")

    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], StorageError), outcome
    message = str(outcome[0])
    assert message.startswith("schema migration failed at reading what is applied: ")
    assert "terminating connection due to administrator command" in message
    assert "connection is closed" not in message
