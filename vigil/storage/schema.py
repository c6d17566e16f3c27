"""Database creation and schema migrations.

Hand-written rather than Alembic or yoyo: the schema is plain SQL with one branch (TimescaleDB
present or not) decided at run time, and a dozen lines with an advisory lock cover it.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vigil.storage import StorageError

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


def timescale_available(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def _migration_sql(name: str) -> str:
    return resources.files("vigil.migrations").joinpath(name).read_text()


def migrate(database_url: str, *, retention_days: int) -> list[str]:
    """Apply the migrations not yet applied, in order; returns the names applied."""
    applied: list[str] = []
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                             "name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
                done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
                timescale = timescale_available(conn)
                steps = [
                    ("0001_core", _migration_sql("0001_core.sql")),
                    ("0002_readings",
                     _migration_sql("0002_readings_timescale.sql").replace("{retention_days}", str(retention_days))
                     if timescale else _migration_sql("0002_readings_plain.sql")),
                    ("0003_alert_indexes", _migration_sql("0003_alert_indexes.sql")),
                    ("0004_device_liveness", _migration_sql("0004_device_liveness.sql")),
                    ("0005_message_digests", _migration_sql("0005_message_digests.sql")),
                    ("0006_token_lifetimes", _migration_sql("0006_token_lifetimes.sql")),
                ]
                for name, body in steps:
                    if name in done:
                        continue
                    with conn.transaction():
                        if timescale and name == "0002_readings":
                            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                        conn.execute(body)
                        conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                    log.info("applied migration %s", name)
                    applied.append(name)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    except psycopg.Error as e:
        raise StorageError(f"schema migration failed: {e}") from e
    return applied


def uses_timescale(database_url: str) -> bool:
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None
