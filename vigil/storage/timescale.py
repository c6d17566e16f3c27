"""TimescaleDB: whether `readings` lives on it, and keeping its policies in line with the settings.

Two decisions, both pure functions over what the server reports, so every branch is tested on plain
PostgreSQL:

- `choose_flavour`: `VIGIL_TIMESCALE` (auto|on|off) against the server. The extension is used only
  when the server preloads it (`shared_preload_libraries`): an extension that is installed but not
  preloaded cannot be created ("must be preloaded"), and choosing it then would fail the migration.
  A database whose `readings` exists keeps the flavour it was created with.
- `policy_statements`: the SQL that brings the server's jobs to what the settings ask for. Run at
  every migration and by the scheduler's hourly retention job, so a changed `VIGIL_RETENTION_DAYS`
  reaches the retention policies without a new migration (0002 wrote the first value into them).

What the policies are, and why:
- `readings` and `readings_1m` each have a retention policy of `VIGIL_RETENTION_DAYS`, so the
  aggregate holds what the plain-PostgreSQL view would show, not minutes of readings long dropped.
- the refresh policy of `readings_1m` spans the whole retention window. TimescaleDB logs the time
  range of every write below what it has materialized and a refresh re-materializes only those
  ranges, so a sync hours late has its buckets refreshed by the next run (within a minute) while a
  run with nothing late costs next to nothing. The old 3-hour window never saw later data.
- real-time aggregation (`materialized_only = false`, off by default since TimescaleDB 2.13): a
  query adds the readings newer than the last refresh, so the newest minutes are in the view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import psycopg
from psycopg import sql

from vigil.storage import StorageError

log = logging.getLogger(__name__)

TimescaleMode = Literal["auto", "on", "off"]
Flavour = Literal["hypertable", "table"]

READINGS = "readings"
AGGREGATE = "readings_1m"
# The refresh stops one bucket short of now: the current minute is still being written, and
# real-time aggregation serves it from the raw readings.
REFRESH_END_OFFSET = timedelta(minutes=1)
REFRESH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class ServerFacts:
    """What PostgreSQL says about TimescaleDB and about the `readings` table, if it exists."""

    preload_libraries: str | None  # SHOW shared_preload_libraries; None: this login may not read it
    available: bool  # the extension is installed on the server (pg_available_extensions)
    readings: Flavour | None  # None: readings is not created yet


@dataclass(frozen=True)
class FlavourChoice:
    timescale: bool
    reason: str


def preloaded(preload_libraries: str) -> bool:
    """Whether `timescaledb` is among the libraries in a `shared_preload_libraries` value."""
    for item in preload_libraries.split(","):
        name = item.strip().strip('"').rsplit("/", 1)[-1]
        if name.removesuffix(".so") == "timescaledb":
            return True
    return False


def choose_flavour(mode: TimescaleMode, facts: ServerFacts) -> FlavourChoice:
    """Whether `readings` is (to be) a hypertable; a StorageError naming the setting when it cannot be."""
    unknown = facts.preload_libraries is None
    is_preloaded = unknown or preloaded(facts.preload_libraries)  # on trust where unreadable; see below
    libraries = facts.preload_libraries or "empty"
    not_preloaded = (f"timescaledb is not in shared_preload_libraries ({libraries}); add it in postgresql.conf "
                     "and restart PostgreSQL")
    if facts.readings == "hypertable":
        if mode == "off":
            raise StorageError("VIGIL_TIMESCALE=off, but readings in this database is already a TimescaleDB "
                               "hypertable, and a schema keeps the flavour it was created with: set "
                               "VIGIL_TIMESCALE=auto or on, or use a new database")
        if not is_preloaded:
            raise StorageError(f"readings in this database is a TimescaleDB hypertable, but {not_preloaded}")
        return FlavourChoice(True, "readings is already a TimescaleDB hypertable")
    if facts.readings == "table":
        if mode == "on":
            raise StorageError("VIGIL_TIMESCALE=on, but readings in this database was created on plain "
                               "PostgreSQL, and a schema keeps the flavour it was created with: set "
                               "VIGIL_TIMESCALE=auto or off, or use a new database")
        return FlavourChoice(False, "readings is already a plain PostgreSQL table")
    if mode == "off":
        return FlavourChoice(False, "VIGIL_TIMESCALE=off")
    if mode == "on":
        if not facts.available:
            raise StorageError("VIGIL_TIMESCALE=on, but the timescaledb extension is not installed on this "
                               "PostgreSQL server: install it, or set VIGIL_TIMESCALE=auto or off")
        if not is_preloaded:
            raise StorageError(f"VIGIL_TIMESCALE=on, but {not_preloaded}, or set VIGIL_TIMESCALE=auto or off")
        return FlavourChoice(True, "VIGIL_TIMESCALE=on and timescaledb is preloaded")
    if facts.available and unknown:
        raise StorageError("VIGIL_TIMESCALE=auto, but this login may not read shared_preload_libraries (it "
                           "needs superuser or pg_read_all_settings) to tell whether timescaledb is preloaded: "
                           "set VIGIL_TIMESCALE=on or off")
    if facts.available and is_preloaded:
        return FlavourChoice(True, "timescaledb is installed and preloaded")
    if facts.available:
        return FlavourChoice(False, f"timescaledb is installed but {not_preloaded} to use it")
    return FlavourChoice(False, "timescaledb is not installed")


def server_facts(conn: psycopg.Connection) -> ServerFacts:
    """Read from the catalogs only: nothing here loads the extension's library."""
    try:
        libraries = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        # Superuser or pg_read_all_settings only. With VIGIL_TIMESCALE=on the extension is then
        # created on trust, and PostgreSQL's own error is reported if it is not preloaded.
        libraries = None
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return ServerFacts(preload_libraries=libraries, available=available is not None, readings=readings_flavour(conn))


def readings_flavour(conn: psycopg.Connection) -> Flavour | None:
    """What `readings` is in the connected database: a hypertable, a plain table, or not there yet."""
    if conn.execute("SELECT to_regclass('readings')").fetchone()[0] is None:
        return None
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if installed is None:
        return "table"
    hypertable = conn.execute(
        "SELECT 1 FROM _timescaledb_catalog.hypertable WHERE schema_name = current_schema() AND table_name = %s",
        (READINGS,),
    ).fetchone()
    return "hypertable" if hypertable else "table"


# --- policies ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshPolicy:
    start_offset: timedelta | None
    end_offset: timedelta | None
    schedule_interval: timedelta


@dataclass(frozen=True)
class Policies:
    """The jobs TimescaleDB holds for readings and readings_1m (None: no such job)."""

    readings_drop_after: timedelta | None
    aggregate_drop_after: timedelta | None
    refresh: RefreshPolicy | None
    materialized_only: bool


def wanted_refresh(retention_days: int) -> RefreshPolicy:
    return RefreshPolicy(timedelta(days=retention_days), REFRESH_END_OFFSET, REFRESH_EVERY)


def _interval(value: timedelta) -> sql.Composable:
    """An interval literal in days when whole days (as `timescaledb_information.jobs` then shows it)."""
    seconds = int(value.total_seconds())
    text = f"{seconds // 86_400} days" if seconds % 86_400 == 0 else f"{seconds} seconds"
    return sql.SQL("{}::interval").format(sql.Literal(text))


def _retention(relation: str, drop_after: timedelta) -> list[sql.Composable]:
    return [
        sql.SQL("SELECT remove_retention_policy({}, if_exists => true)").format(sql.Literal(relation)),
        sql.SQL("SELECT add_retention_policy({}, drop_after => {})").format(sql.Literal(relation),
                                                                            _interval(drop_after)),
    ]


def policy_statements(current: Policies, retention_days: int) -> list[sql.Composable]:
    """The statements that make `current` what `retention_days` asks for; none when it already is."""
    window = timedelta(days=retention_days)
    statements: list[sql.Composable] = []
    if current.readings_drop_after != window:
        statements += _retention(READINGS, window)
    if current.aggregate_drop_after != window:
        statements += _retention(AGGREGATE, window)
    refresh = wanted_refresh(retention_days)
    if current.refresh != refresh:
        statements += [
            sql.SQL("SELECT remove_continuous_aggregate_policy({}, if_exists => true)").format(
                sql.Literal(AGGREGATE)),
            sql.SQL("SELECT add_continuous_aggregate_policy({}, start_offset => {}, end_offset => {}, "
                    "schedule_interval => {})").format(
                sql.Literal(AGGREGATE), _interval(refresh.start_offset), _interval(refresh.end_offset),
                _interval(refresh.schedule_interval)),
        ]
    if current.materialized_only:
        statements.append(sql.SQL("ALTER MATERIALIZED VIEW {} SET (timescaledb.materialized_only = false)").format(
            sql.Identifier(AGGREGATE)))
    return statements


# Retention and refresh jobs of readings and of readings_1m (whose jobs are on its materialization
# hypertable). Config keys as TimescaleDB 2 writes them: drop_after, start_offset, end_offset.
_JOBS = """
SELECT j.proc_name, coalesce(ca.view_name, j.hypertable_name)::text,
       (j.config->>'drop_after')::interval, (j.config->>'start_offset')::interval,
       (j.config->>'end_offset')::interval, j.schedule_interval
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.continuous_aggregates ca
  ON ca.materialization_hypertable_schema = j.hypertable_schema
 AND ca.materialization_hypertable_name = j.hypertable_name
WHERE j.proc_name IN ('policy_retention', 'policy_refresh_continuous_aggregate')
  AND coalesce(ca.view_schema, j.hypertable_schema) = current_schema()
"""
_MATERIALIZED_ONLY = """
SELECT materialized_only FROM timescaledb_information.continuous_aggregates
WHERE view_schema = current_schema() AND view_name = %s
"""


def current_policies(conn: psycopg.Connection) -> Policies:
    drop_after: dict[str, timedelta] = {}
    refresh: RefreshPolicy | None = None
    for proc, relation, drop, start, end, every in conn.execute(_JOBS):
        if proc == "policy_retention" and drop is not None:
            drop_after[relation] = drop
        elif proc == "policy_refresh_continuous_aggregate" and relation == AGGREGATE:
            refresh = RefreshPolicy(start, end, every)
    row = conn.execute(_MATERIALIZED_ONLY, (AGGREGATE,)).fetchone()
    return Policies(readings_drop_after=drop_after.get(READINGS), aggregate_drop_after=drop_after.get(AGGREGATE),
                    refresh=refresh, materialized_only=bool(row and row[0]))


def apply_policies(conn: psycopg.Connection, *, retention_days: int) -> int:
    """Bring the TimescaleDB jobs in line with `retention_days`; returns how many statements ran."""
    with conn.transaction():
        statements = policy_statements(current_policies(conn), retention_days)
        for statement in statements:
            conn.execute(statement)
    if statements:
        log.info("TimescaleDB policies set for a retention of %d days (%d statements)",
                 retention_days, len(statements))
    return len(statements)
