"""Reading back stragglers' windows from the real PostgreSQL: exact times, window bounds, one query, and a
connection left ready for the agent's next write."""

from __future__ import annotations

import psycopg
import pytest

from streams.stored_readings import read_windows
from tests.integration.databases import own_database_url, recreate
from vigil.rules.stragglers import Window
from vigil.storage.schema import migrate

pytestmark = pytest.mark.infra
T_MS = 1_796_000_000_000
URL = own_database_url("stored")


@pytest.fixture(scope="module")
def database() -> str:
    recreate(URL)
    migrate(URL, retention_days=30)
    return URL


def store(rows: list[tuple[str, int, str, float, int]]) -> None:
    """Readings (device, ts_ms, metric, value, seq) as the stream worker's COPY stores them."""
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.cursor().executemany("INSERT INTO readings (device_id, ts, metric, value, seq) "
                                  "VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s)", rows)


async def test_each_device_gets_its_windows_readings_to_the_millisecond(database):
    store([
        ("wb-1", T_MS - 1, "heart_rate", 70.0, 1),  # before the window
        ("wb-1", T_MS, "heart_rate", 35.5, 1),  # its first instant
        ("wb-1", T_MS + 123, "worn", 1.0, 1),
        ("wb-1", T_MS + 123, "worn", 1.0, 2),  # the same reading under another seq: read once
        ("wb-1", T_MS + 59_999, "steps", 3.0, 2),
        ("wb-1", T_MS + 60_000, "heart_rate", 36.0, 2),  # the window's end: left out
        ("wb-1", T_MS + 500_017, "spo2", 91.0, 3),  # a second window
        ("wb-2", T_MS + 5, "co_ppm", 170.25, 1),
        ("wb-3", T_MS + 5, "co_ppm", 4.0, 1),  # a device not asked for
    ])
    async with await psycopg.AsyncConnection.connect(database) as conn:
        found = await read_windows(conn, [("wb-1", Window(T_MS, T_MS + 60_000, repairs=True)),
                                          ("wb-1", Window(T_MS + 500_000, T_MS + 500_100, repairs=False)),
                                          ("wb-2", Window(T_MS - 3_600_000, T_MS + 1_000, repairs=True))])

        assert sorted(found["wb-1"]) == [(T_MS, "heart_rate", 35.5), (T_MS + 123, "worn", 1.0),
                                         (T_MS + 59_999, "steps", 3.0), (T_MS + 500_017, "spo2", 91.0)]
        assert found["wb-2"] == [(T_MS + 5, "co_ppm", 170.25)]
        assert set(found) == {"wb-1", "wb-2"}
        # The read's transaction is over: the agent's next write commits as its own.
        async with conn.transaction():
            await conn.execute("INSERT INTO readings (device_id, ts, metric, value, seq) "
                               "VALUES ('wb-4', now(), 'battery', 50, 1)")
    with psycopg.connect(URL) as other:
        assert other.execute("SELECT count(*) FROM readings WHERE device_id = 'wb-4'").fetchone()[0] == 1


async def test_no_window_reads_nothing(database):
    async with await psycopg.AsyncConnection.connect(database) as conn:
        assert await read_windows(conn, []) == {}
