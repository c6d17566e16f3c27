"""The policy SQL run against PostgreSQL, with a stand-in for TimescaleDB's API.

TimescaleDB cannot be installed where this suite runs, so the few parts of its API that
`vigil.storage.timescale` uses are stood in for by plain SQL with the documented signatures
(add_retention_policy, remove_retention_policy, add_continuous_aggregate_policy,
remove_continuous_aggregate_policy) and the documented columns of timescaledb_information.jobs and
.continuous_aggregates, keeping job configs under the keys TimescaleDB 2 writes (drop_after,
start_offset, end_offset). What this checks: the query that reads the jobs, the named arguments of
every generated call, and that applying the statements reaches a fixed point. What it cannot check:
TimescaleDB's own behaviour behind those calls.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.integration.databases import own_database_url, recreate
from vigil.storage.schema import migrate
from vigil.storage.timescale import Policies, RefreshPolicy, apply_policies, current_policies, wanted_refresh

pytestmark = pytest.mark.infra
URL = own_database_url("policies")

STAND_IN = """
CREATE SCHEMA timescaledb_information;
CREATE SCHEMA stand_in;
CREATE TABLE stand_in.hypertables (id serial PRIMARY KEY, schema_name name, table_name name, view_name name);
INSERT INTO stand_in.hypertables (schema_name, table_name, view_name) VALUES
    (current_schema(), 'readings', NULL),
    ('_timescaledb_internal', '_materialized_hypertable_2', 'readings_1m');
CREATE TABLE stand_in.jobs (job_id serial PRIMARY KEY, proc_name name, hypertable_id int, config jsonb,
                            schedule_interval interval);
CREATE TABLE stand_in.caggs (view_name name, materialized_only bool);
INSERT INTO stand_in.caggs VALUES ('readings_1m', true);

CREATE VIEW timescaledb_information.jobs AS
SELECT j.job_id, j.proc_name, h.schema_name AS hypertable_schema, h.table_name AS hypertable_name,
       j.config, j.schedule_interval
FROM stand_in.jobs j JOIN stand_in.hypertables h ON h.id = j.hypertable_id;
CREATE VIEW timescaledb_information.continuous_aggregates AS
SELECT current_schema()::name AS view_schema, c.view_name, h.schema_name AS materialization_hypertable_schema,
       h.table_name AS materialization_hypertable_name, c.materialized_only
FROM stand_in.caggs c JOIN stand_in.hypertables h ON h.view_name = c.view_name;

CREATE FUNCTION stand_in.ht(relation regclass) RETURNS int LANGUAGE sql AS $$
    SELECT id FROM stand_in.hypertables
    WHERE coalesce(view_name, table_name) = (SELECT relname FROM pg_class WHERE oid = relation) $$;
CREATE FUNCTION remove_retention_policy(relation regclass, if_exists boolean = false) RETURNS void
LANGUAGE sql AS $$ DELETE FROM stand_in.jobs WHERE proc_name = 'policy_retention'
                   AND hypertable_id = stand_in.ht(relation) $$;
CREATE FUNCTION add_retention_policy(relation regclass, drop_after interval = NULL,
                                     if_not_exists boolean = false) RETURNS int
LANGUAGE sql AS $$ INSERT INTO stand_in.jobs (proc_name, hypertable_id, config, schedule_interval)
                   VALUES ('policy_retention', stand_in.ht(relation),
                           jsonb_build_object('drop_after', drop_after::text,
                                              'hypertable_id', stand_in.ht(relation)), '1 day')
                   RETURNING job_id $$;
CREATE FUNCTION remove_continuous_aggregate_policy(continuous_aggregate regclass,
                                                   if_not_exists boolean = false, if_exists boolean = NULL)
RETURNS void
LANGUAGE sql AS $$ DELETE FROM stand_in.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate'
                   AND hypertable_id = stand_in.ht(continuous_aggregate) $$;
CREATE FUNCTION add_continuous_aggregate_policy(continuous_aggregate regclass, start_offset interval,
                                                end_offset interval, schedule_interval interval,
                                                if_not_exists boolean = false) RETURNS int
LANGUAGE sql AS $$ INSERT INTO stand_in.jobs (proc_name, hypertable_id, config, schedule_interval)
                   VALUES ('policy_refresh_continuous_aggregate', stand_in.ht(continuous_aggregate),
                           jsonb_build_object('start_offset', start_offset::text,
                                              'end_offset', end_offset::text,
                                              'mat_hypertable_id', stand_in.ht(continuous_aggregate)),
                           schedule_interval)
                   RETURNING job_id $$;
-- As migration 0002 leaves a TimescaleDB database: 30 days on readings, a 3-hour refresh window.
SELECT add_retention_policy('readings', drop_after => '30 days');
SELECT add_continuous_aggregate_policy('readings_1m', start_offset => '3 hours', end_offset => '1 minute',
                                       schedule_interval => '1 minute');
"""


@pytest.fixture
def conn():
    recreate(URL)
    migrate(URL, retention_days=30, timescale="off")
    with psycopg.connect(URL, autocommit=True) as connection:
        connection.execute(STAND_IN)
        # The one statement a stand-in cannot take (a view option only TimescaleDB knows); its
        # text is asserted in tests/unit/storage/test_timescale.py.
        connection.execute("UPDATE stand_in.caggs SET materialized_only = false")
        yield connection


def test_the_jobs_as_migration_0002_left_them_are_read_back(conn):
    assert current_policies(conn) == Policies(
        readings_drop_after=timedelta(days=30),
        aggregate_drop_after=None,
        refresh=RefreshPolicy(timedelta(hours=3), timedelta(minutes=1), timedelta(minutes=1)),
        materialized_only=False,
    )


def test_applying_reaches_the_wanted_policies_and_then_does_nothing(conn):
    assert apply_policies(conn, retention_days=30) == 4  # the aggregate's retention; the refresh window

    assert current_policies(conn) == Policies(timedelta(days=30), timedelta(days=30), wanted_refresh(30), False)
    assert apply_policies(conn, retention_days=30) == 0


def test_a_changed_retention_replaces_the_policies_once(conn):
    apply_policies(conn, retention_days=30)

    assert apply_policies(conn, retention_days=7) == 6
    assert current_policies(conn) == Policies(timedelta(days=7), timedelta(days=7), wanted_refresh(7), False)
    jobs = conn.execute("SELECT count(*) FROM stand_in.jobs").fetchone()[0]
    assert jobs == 3, "one retention job per relation and one refresh job, never two"
