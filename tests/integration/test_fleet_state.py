"""The fleet-state bench on a tiny fleet: a real stream worker judges it, and what it reports holds together.

Its own Tansu and a real `python -m streams`, on a database of its own; the run's rows and broker are
gone afterwards.
"""

from __future__ import annotations

import psycopg
import pytest

from bench.fleet_state import KINDS, measure
from tests.integration.databases import fresh_database
from vigil.settings import Settings

pytestmark = pytest.mark.infra

DEVICES = 50


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(_env_file=None, DATABASE_URL=fresh_database("fleet_state"))


@pytest.fixture(scope="module")
def result(settings):
    return measure(settings, devices=DEVICES, real_time_window_s=20)


def test_every_device_has_a_state_on_the_changelog_of_a_plausible_size(result):
    assert result.state["all"].devices == DEVICES
    assert [result.state[kind].devices for kind in KINDS] == [DEVICES // 2, DEVICES // 2]
    for sizes in result.state.values():
        assert 100 <= sizes.p50_b <= sizes.p95_b <= sizes.max_b <= 64 * 1024
        assert sizes.p50_b / 2 <= sizes.mean_b <= sizes.max_b
    # Each device's state was written at least once for the backlog, none for each of its records.
    assert DEVICES <= result.changelog_records < result.records
    assert result.changelog_bytes >= result.state["all"].mean_b * DEVICES


def test_the_backlog_covers_each_kinds_longest_window_and_was_judged(result):
    # The longest minute windows (heart rate's 10 minutes, CO's 60), the 2-minute allowance, 5 more.
    assert result.event_minutes == {"wearable": 17, "home": 67}
    # Over those minutes a home sensor sends a record every 1-5 minutes, a wearable every 5-60 s.
    assert result.records >= DEVICES // 2 * (67 // 5 + 17)
    # A wearable off the wrist sends 4 readings, on it 7; a home sensor 10.
    assert result.readings >= 4 * result.records
    assert result.judge_s > 0 and result.worker_cpu_s > 0


def test_the_worker_was_measured_idle_loaded_restarted_and_at_real_time_rates(result):
    assert 20_000 < result.idle_rss_kb <= result.backlog_peak_rss_kb
    assert result.backlog_rss_kb > 0 and result.restarted_rss_kb > 0 and result.real_time_rss_kb > 0
    assert 0 < result.start_s < result.restart_s + 60
    assert result.restart_s < result.restart_judged_s
    assert result.recovered
    assert result.real_time_records > 0 and result.real_time_s >= result.real_time_window_s - 1
    assert result.real_time_worker_cpu_s > 0
    assert 0 < result.real_time_changelog_records <= result.real_time_records + 1
    assert result.changelog_bytes_per_s > 0
    assert result.to_json()["aim_state_bytes"] == 2048


def test_the_run_leaves_no_rows_and_no_broker_behind(settings, result):
    with psycopg.connect(settings.database_url) as conn:
        for table in ("devices", "readings", "messages", "device_liveness"):
            left = conn.execute(f"SELECT count(*) FROM {table} WHERE device_id LIKE 'bench-fleet-%'").fetchone()[0]
            assert left == 0, table
        assert conn.execute("SELECT count(*) FROM members WHERE id LIKE 'bench-fleet-%'").fetchone()[0] == 0
    assert not list(settings.state_dir.glob("bench-fleet-*"))
