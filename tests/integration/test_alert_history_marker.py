"""The episode marker against PostgreSQL's own `@>`: the alert store finds absorbed episodes with it."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from alerts.event_decoding import episode_marker, history_entry

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def conn():
    # No table is needed, only the server's jsonb containment: the maintenance database will do.
    with psycopg.connect(make_conninfo(os.environ["DATABASE_URL"], dbname="postgres"), autocommit=True) as c:
        yield c


def _contains(conn: psycopg.Connection, history: list[dict], marker: list[dict]) -> bool:
    return conn.execute("SELECT %s::jsonb @> %s::jsonb", (Jsonb(history), Jsonb(marker))).fetchone()[0]


def test_a_history_that_absorbed_the_episode_contains_its_marker(conn) -> None:
    now = datetime.now(UTC)
    history = [history_entry("raised", now), history_entry("retriggered", now, episode="e-1")]
    assert _contains(conn, history, episode_marker("e-1"))


@pytest.mark.parametrize("other", ["e-2", "e-10", "E-1", ""])
def test_another_episode_is_not_contained(conn, other: str) -> None:
    history = [history_entry("retriggered", datetime.now(UTC), episode=other)]
    assert not _contains(conn, history, episode_marker("e-1"))


def test_a_history_without_episodes_contains_no_marker(conn) -> None:
    assert not _contains(conn, [history_entry("raised", datetime.now(UTC))], episode_marker("e-1"))
