"""Database creation and schema migrations.

Hand-written rather than Alembic or yoyo: the schema is plain SQL with one branch (TimescaleDB or
not, decided by `vigil.storage.timescale.choose_flavour`), and a dozen lines with an advisory lock
cover it.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vigil.storage import StorageError
from vigil.storage.timescale import TimescaleMode, apply_policies, choose_flavour, readings_flavour, server_facts

log = logging.getLogger(__name__)
_LOCK_ID = 0x5617_11  # arbitrary, constant: serialises concurrent `migrate` calls


def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL when it is missing; True when it was created."""
    params = conninfo_to_dict(database_url)
    name = params.get("dbname") or "postgres"
    admin_url = make_conninfo(database_url, dbname="postgres")
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database %s", name)
            return True
    except psycopg.Error as e:
        raise StorageError(f"cannot reach PostgreSQL at {admin_url!r} to create {name!r}: {e}") from e


def _migration_sql(name: str) -> str:
    return resources.files("vigil.migrations").joinpath(name).read_text()


def describe(error: psycopg.Error) -> str:
    """PostgreSQL's own words for an error: its message, detail, hint and SQLSTATE, as far as it gave them."""
    diag = error.diag
    parts = [diag.message_primary or str(error).strip() or type(error).__name__]
    if diag.message_detail:
        parts.append(f"detail: {diag.message_detail}")
    if diag.message_hint:
        parts.append(f"hint: {diag.message_hint}")
    if diag.sqlstate:
        parts.append(f"SQLSTATE {diag.sqlstate}")
    return "; ".join(parts)


def migrate(database_url: str, *, retention_days: int, timescale: TimescaleMode = "auto") -> list[str]:
    """Apply the migrations not yet applied, in order; returns the names applied.

    Then, on TimescaleDB, the retention and refresh policies are set from `retention_days`, on every
    call: the setting may have changed since the schema was made.
    """
    applied: list[str] = []
    step = "connecting"
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            step = "taking the migration lock"
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                step = "reading what is applied"
                conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
                choice = choose_flavour(timescale, server_facts(conn))
                if "0002_readings" not in done:
                    log.info("readings on %s: %s", "TimescaleDB" if choice.timescale else "plain PostgreSQL",
                             choice.reason)
                steps = [
                    ("0001_core", _migration_sql("0001_core.sql")),
                    ("0002_readings",
                     _migration_sql("0002_readings_timescale.sql").replace("{retention_days}", str(retention_days))
                     if choice.timescale else _migration_sql("0002_readings_plain.sql")),
                    ("0003_alert_indexes", _migration_sql("0003_alert_indexes.sql")),
                    ("0004_device_liveness", _migration_sql("0004_device_liveness.sql")),
                    ("0005_message_digests", _migration_sql("0005_message_digests.sql")),
                    ("0006_token_lifetimes", _migration_sql("0006_token_lifetimes.sql")),
                    ("0007_outreach", _migration_sql("0007_outreach.sql")),
                    ("0008_claims", _migration_sql("0008_claims.sql")),
                ]
                for name, body in steps:
                    if name in done:
                        continue
                    step = name
                    with conn.transaction():
                        if choice.timescale and name == "0002_readings":
                            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                        conn.execute(body)
                        conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                    log.info("applied migration %s", name)
                    applied.append(name)
                if choice.timescale:
                    step = "setting the TimescaleDB policies"
                    apply_policies(conn, retention_days=retention_days)
            finally:
                _unlock(conn)
    except psycopg.Error as e:
        raise StorageError(f"schema migration failed at {step}: {describe(e)}") from e
    return applied


def _unlock(conn: psycopg.Connection) -> None:
    """Release the migration lock, if the session still holds it.

    A session the server has ended (a FATAL error, a terminated backend) released it already; an
    unlock attempted there would raise "the connection is closed" and hide the real error.
    """
    if conn.closed or conn.broken:
        return
    try:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    except psycopg.Error as e:
        log.warning("could not release the migration lock (it goes with the session): %s", describe(e))


def uses_timescale(database_url: str) -> bool:
    """Whether readings in this database is a TimescaleDB hypertable."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return readings_flavour(conn) == "hypertable"
