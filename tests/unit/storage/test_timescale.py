"""TimescaleDB decisions, without the extension: which flavour a setting and a server give, and the
SQL that keeps the policies in line with VIGIL_RETENTION_DAYS."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from vigil.settings import Settings
from vigil.storage import StorageError
from vigil.storage.timescale import (
    Policies,
    RefreshPolicy,
    ServerFacts,
    choose_flavour,
    policy_statements,
    preloaded,
    wanted_refresh,
)

PRELOADED = "timescaledb"


def facts(libraries: str = "", *, available: bool = True, readings=None) -> ServerFacts:
    return ServerFacts(preload_libraries=libraries, available=available, readings=readings)


# --- shared_preload_libraries ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["timescaledb", "pg_stat_statements, timescaledb", '"timescaledb"',
                                   "$libdir/timescaledb", "timescaledb.so,auto_explain"])
def test_preloaded_finds_timescaledb_however_it_is_listed(value: str) -> None:
    assert preloaded(value)


@pytest.mark.parametrize("value", ["", "pg_stat_statements", "timescaledb_toolkit", "pg_timescaledb"])
def test_preloaded_is_false_without_it(value: str) -> None:
    assert not preloaded(value)


# --- the flavour of a new database ------------------------------------------------------------------


def test_auto_uses_timescaledb_only_when_preloaded() -> None:
    assert choose_flavour("auto", facts(PRELOADED)).timescale
    installed_only = choose_flavour("auto", facts(""))
    assert not installed_only.timescale
    assert "not in shared_preload_libraries" in installed_only.reason  # the failing case
    assert not choose_flavour("auto", facts(available=False)).timescale


def test_off_is_plain_even_where_timescaledb_is_preloaded() -> None:
    assert not choose_flavour("off", facts(PRELOADED)).timescale


def test_on_requires_the_extension_preloaded() -> None:
    assert choose_flavour("on", facts(PRELOADED)).timescale
    with pytest.raises(StorageError, match=r"VIGIL_TIMESCALE=on, but timescaledb is not in shared_preload_libraries"):
        choose_flavour("on", facts("pg_stat_statements"))
    with pytest.raises(StorageError, match=r"VIGIL_TIMESCALE=on, but the timescaledb extension is not installed"):
        choose_flavour("on", facts(PRELOADED, available=False))


def test_a_login_that_may_not_read_the_preload_list_must_say_which_flavour() -> None:
    unreadable = facts(None)
    with pytest.raises(StorageError, match=r"may not read shared_preload_libraries .* set VIGIL_TIMESCALE=on or off"):
        choose_flavour("auto", unreadable)
    assert choose_flavour("on", unreadable).timescale  # on trust: PostgreSQL's own error if it is not preloaded
    assert not choose_flavour("off", unreadable).timescale
    assert not choose_flavour("auto", facts(None, available=False)).timescale
    assert choose_flavour("auto", facts(None, readings="hypertable")).timescale


# --- a database whose readings exists keeps its flavour -----------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_an_existing_hypertable_stays_one(mode) -> None:
    assert choose_flavour(mode, facts(PRELOADED, readings="hypertable")).timescale


def test_an_existing_hypertable_without_the_preload_is_named_as_such() -> None:
    with pytest.raises(StorageError, match="is a TimescaleDB hypertable, but timescaledb is not in shared_preload"):
        choose_flavour("auto", facts("", readings="hypertable"))


def test_off_refuses_a_database_made_on_timescaledb() -> None:
    with pytest.raises(StorageError, match="VIGIL_TIMESCALE=off, but readings in this database is already"):
        choose_flavour("off", facts(PRELOADED, readings="hypertable"))


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_an_existing_plain_table_stays_plain_even_once_timescaledb_is_preloaded(mode) -> None:
    assert not choose_flavour(mode, facts(PRELOADED, readings="table")).timescale


def test_on_refuses_a_database_made_on_plain_postgresql() -> None:
    with pytest.raises(StorageError, match="VIGIL_TIMESCALE=on, but readings in this database was created on plain"):
        choose_flavour("on", facts(PRELOADED, readings="table"))


# --- the setting -----------------------------------------------------------------------------------


def test_the_setting_defaults_to_auto_and_accepts_any_case() -> None:
    assert Settings().timescale == "auto"
    assert Settings(VIGIL_TIMESCALE=" ON ").timescale == "on"


def test_an_invalid_setting_is_refused_with_its_name(monkeypatch) -> None:
    from vigil.settings import ConfigError, get_settings

    monkeypatch.setenv("VIGIL_TIMESCALE", "maybe")
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"VIGIL_TIMESCALE='maybe' is not usable: .*'auto', 'on' or 'off'"):
            get_settings()
    finally:
        get_settings.cache_clear()
    with pytest.raises(ValidationError):
        Settings(VIGIL_TIMESCALE="yes")


# --- policies ---------------------------------------------------------------------------------------


def as_text(statements) -> list[str]:
    return [s.as_string() for s in statements]


AS_MIGRATION_0002_LEFT_THEM = Policies(
    readings_drop_after=timedelta(days=30),
    aggregate_drop_after=None,
    refresh=RefreshPolicy(timedelta(hours=3), timedelta(minutes=1), timedelta(minutes=1)),
    materialized_only=True,
)


def test_a_database_made_by_migration_0002_gets_the_missing_policies() -> None:
    statements = as_text(policy_statements(AS_MIGRATION_0002_LEFT_THEM, retention_days=30))

    assert statements == [
        # readings keeps its 30 days; the aggregate gets the same window ...
        "SELECT remove_retention_policy('readings_1m', if_exists => true)",
        "SELECT add_retention_policy('readings_1m', drop_after => '30 days'::interval)",
        # ... a refresh over the whole window instead of the last 3 hours ...
        "SELECT remove_continuous_aggregate_policy('readings_1m', if_exists => true)",
        "SELECT add_continuous_aggregate_policy('readings_1m', start_offset => '30 days'::interval, "
        "end_offset => '60 seconds'::interval, schedule_interval => '60 seconds'::interval)",
        # ... and the newest minutes from the raw readings.
        'ALTER MATERIALIZED VIEW "readings_1m" SET (timescaledb.materialized_only = false)',
    ]


def test_a_changed_retention_replaces_every_policy_that_depends_on_it() -> None:
    current = Policies(timedelta(days=30), timedelta(days=30), wanted_refresh(30), materialized_only=False)

    statements = as_text(policy_statements(current, retention_days=7))

    assert statements == [
        "SELECT remove_retention_policy('readings', if_exists => true)",
        "SELECT add_retention_policy('readings', drop_after => '7 days'::interval)",
        "SELECT remove_retention_policy('readings_1m', if_exists => true)",
        "SELECT add_retention_policy('readings_1m', drop_after => '7 days'::interval)",
        "SELECT remove_continuous_aggregate_policy('readings_1m', if_exists => true)",
        "SELECT add_continuous_aggregate_policy('readings_1m', start_offset => '7 days'::interval, "
        "end_offset => '60 seconds'::interval, schedule_interval => '60 seconds'::interval)",
    ]


def test_policies_already_as_wanted_need_no_statement() -> None:
    current = Policies(timedelta(days=90), timedelta(days=90), wanted_refresh(90), materialized_only=False)

    assert policy_statements(current, retention_days=90) == []


def test_no_policy_at_all_gets_every_one() -> None:
    statements = as_text(policy_statements(Policies(None, None, None, materialized_only=False), retention_days=30))

    added = [s for s in statements if s.startswith("SELECT add_")]
    assert [s.split("(")[0] for s in added] == [
        "SELECT add_retention_policy", "SELECT add_retention_policy", "SELECT add_continuous_aggregate_policy"]


def test_the_refresh_covers_the_whole_retention_window_and_leaves_the_current_minute_to_real_time() -> None:
    refresh = wanted_refresh(30)

    assert refresh.start_offset == timedelta(days=30)  # a sync any amount late (within retention) is refreshed
    assert refresh.end_offset == timedelta(minutes=1)
    # TimescaleDB refuses a refresh window under two buckets (1-minute buckets here).
    assert refresh.start_offset - refresh.end_offset >= timedelta(minutes=2)
