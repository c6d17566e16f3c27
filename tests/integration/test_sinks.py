"""The stream worker's writers against the real PostgreSQL: a row the database refuses costs only
itself (cleaned, or recorded as `store_refused`), never the batch and never the batches behind it;
a seq sent again with other readings is a `seq_reused` dead letter, a redelivery is nothing."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from streams import metrics
from streams.database import RetryingSession
from tests.integration.databases import own_database_url, recreate
from vigil.storage import sinks
from vigil.storage.schema import migrate
from vigil.telemetry import DeadLetter

pytestmark = pytest.mark.infra
NOW_MS = 1_796_000_000_000
URL = own_database_url("sinks")


@pytest.fixture(scope="module")
def database() -> str:
    recreate(URL)
    migrate(URL, retention_days=30)
    return URL


@pytest.fixture
async def conn(database):
    async with await psycopg.AsyncConnection.connect(database) as connection:
        await sinks.prepare(connection)
        yield connection


def query(statement: str, *params) -> list[tuple]:
    with psycopg.connect(URL, autocommit=True) as c:
        return c.execute(statement, params).fetchall()


def record(device_id: str, seq: int, value: float = 72.0, *, ts_ms: int = NOW_MS - 60_000,
           metric: str = "heart_rate") -> dict:
    return {"device_id": device_id, "member_id": "m-1", "seq": seq, "sent_at_ms": NOW_MS - 100,
            "received_at_ms": NOW_MS, "readings": [(ts_ms, metric, value), (ts_ms, "steps", 0.0)]}


def letters_of(device_id: str) -> list[tuple]:
    return query("SELECT reason, detail, seq, payload FROM dead_letters WHERE device_id = %s ORDER BY id",
                 device_id)


def readings_of(device_id: str) -> list[tuple]:
    return query("SELECT seq, metric, value FROM readings WHERE device_id = %s ORDER BY seq, metric", device_id)


async def test_a_batch_stores_its_readings_and_liveness_with_a_digest_per_message(conn):
    stored = await sinks.store_records(conn, [record("ok-1", 1), record("ok-1", 2)])
    assert stored.readings == 4
    assert [r["seq"] for r in stored.records] == [1, 2]
    assert stored.letters == []
    assert query("SELECT seq, digest IS NOT NULL FROM messages WHERE device_id = 'ok-1' ORDER BY seq") == [
        (1, True), (2, True)]
    assert query("SELECT count(*) FROM device_liveness WHERE device_id = 'ok-1'") == [(1,)]


async def test_a_redelivery_is_a_silent_no_op(conn):
    await sinks.store_records(conn, [record("redo-1", 1)])
    stored = await sinks.store_records(conn, [record("redo-1", 1), record("redo-1", 2)])
    assert stored.readings == 2
    assert stored.letters == []
    assert letters_of("redo-1") == []
    assert len(readings_of("redo-1")) == 4


async def test_a_seq_sent_again_with_other_readings_is_recorded_and_the_first_kept(conn):
    await sinks.store_records(conn, [record("reuse-1", 7, 72.0)])
    stored = await sinks.store_records(conn, [record("reuse-1", 7, 40.0), record("reuse-1", 8)])

    assert stored.readings == 2
    assert [r["seq"] for r in stored.records] == [8]  # the reused one is not judged: it is not stored
    [(reason, detail, seq, payload)] = letters_of("reuse-1")
    assert (reason, seq) == ("seq_reused", 7)
    assert detail.startswith("seq 7 was stored before with other readings")
    assert '"heart_rate",40.0]' in payload
    assert readings_of("reuse-1") == [(7, "heart_rate", 72.0), (7, "steps", 0.0),
                                      (8, "heart_rate", 72.0), (8, "steps", 0.0)]
    # The same reused message delivered again is recorded once.
    again = await sinks.store_records(conn, [record("reuse-1", 7, 40.0)])
    assert [letter.reason for letter in again.letters] == ["seq_reused"]
    assert len(letters_of("reuse-1")) == 1


async def test_no_copy_of_a_reused_seq_is_judged(conn):
    await sinks.store_records(conn, [record("reuse-2", 1, 72.0)])
    stored = await sinks.store_records(conn, [record("reuse-2", 1, 40.0), record("reuse-2", 1, 40.0),
                                              record("reuse-2", 2, 72.0), record("reuse-2", 2, 50.0)])
    assert [(r["seq"], r["readings"][0][2]) for r in stored.records] == [(2, 72.0)]
    assert [(d.seq, d.reason) for d in stored.letters] == [(2, "seq_reused"), (1, "seq_reused")]
    assert [(seq, reason) for reason, _, seq, _ in letters_of("reuse-2")] == [(2, "seq_reused"), (1, "seq_reused")]


async def test_a_message_stored_before_digests_existed_is_taken_as_the_same(conn):
    await sinks.store_records(conn, [record("legacy-1", 1, 72.0)])
    query("UPDATE messages SET digest = NULL WHERE device_id = 'legacy-1' RETURNING 1")
    stored = await sinks.store_records(conn, [record("legacy-1", 1, 40.0)])
    assert (stored.readings, stored.letters) == (0, [])
    assert letters_of("legacy-1") == []


async def test_a_nul_makes_the_batch_refused_and_the_row_by_row_write_cleans_it(conn):
    batch = [record("nul-1", 1), record("nul-1", 2, metric="heart\x00rate"), record("nul-1", 3)]
    with pytest.raises(psycopg.DataError):
        await sinks.store_records(conn, batch)
    assert readings_of("nul-1") == []  # nothing half-written

    stored = await sinks.store_records_singly(conn, batch, now_ms=NOW_MS)

    assert stored.readings == 6
    assert [r["seq"] for r in stored.records] == [1, 2, 3]
    assert (2, "heart\ufffdrate", 72.0) in readings_of("nul-1")
    assert letters_of("nul-1") == []


async def test_a_row_refused_even_cleaned_is_recorded_and_its_batch_mates_stored(conn):
    batch = [record("bad-1", 1), record("bad-1", 2, ts_ms=10**17), record("bad-1", 3)]
    with pytest.raises(psycopg.DataError):
        await sinks.store_records(conn, batch)

    stored = await sinks.store_records_singly(conn, batch, now_ms=NOW_MS)

    assert [r["seq"] for r in stored.records] == [1, 3]
    assert stored.readings == 4
    assert {seq for seq, _, _ in readings_of("bad-1")} == {1, 3}
    [(reason, detail, seq, payload)] = letters_of("bad-1")
    assert (reason, seq) == ("store_refused", 2)
    assert detail.startswith("the database refused this message: DatetimeFieldOverflow: timestamp out of range")
    assert "100000000000000000" in payload
    assert query("SELECT count(*) FROM messages WHERE device_id = 'bad-1'") == [(2,)]


async def test_row_by_row_also_tells_redeliveries_from_reused_seqs(conn):
    await sinks.store_records(conn, [record("mix-1", 1), record("mix-1", 2)])
    batch = [record("mix-1", 1), record("mix-1", 2, 40.0), record("mix-1", 3, ts_ms=10**17)]
    stored = await sinks.store_records_singly(conn, batch, now_ms=NOW_MS)
    assert [r["seq"] for r in stored.records] == [1]
    assert sorted(letter.reason for letter in stored.letters) == ["seq_reused", "store_refused"]
    assert [(reason, seq) for reason, _, seq, _ in letters_of("mix-1")] == [("store_refused", 3), ("seq_reused", 2)]


def letter(device_id: str, **changes) -> DeadLetter:
    fields = {"received_at_ms": NOW_MS, "reason": "schema", "detail": "payload: must be a JSON object",
              "topic": f"devices/{device_id}/telemetry", "device_id": device_id, "seq": 1, "payload": "[]"}
    return DeadLetter(**{**fields, **changes})


async def test_dead_letters_with_nul_and_lone_surrogates_are_stored_cleaned(conn):
    dirty = letter("dl-1", detail='"\x00x": Extra inputs are not permitted', payload='{"\x00x": 1, "\ud800": 2}',
                   topic="devices/dl-1/telemetry\x00", reason="sch\udc80ema")
    await sinks.store_dead_letters(conn, [dirty, letter("dl-1", detail="second")])
    rows = query("SELECT reason, detail, topic, payload FROM dead_letters WHERE device_id = 'dl-1' ORDER BY id")
    assert rows == [("sch\ufffdema", '"\ufffdx": Extra inputs are not permitted', "devices/dl-1/telemetry\ufffd",
                     '{"\ufffdx": 1, "\ufffd": 2}'),
                    ("schema", "second", "devices/dl-1/telemetry", "[]")]


async def test_a_dead_letter_refused_even_cleaned_stands_in_as_store_refused(conn):
    batch = [letter("dl-2", detail="first"), letter("dl-2", received_at_ms=10**18, seq=2**63 - 1),
             letter("dl-2", detail="third")]
    with pytest.raises(psycopg.DataError):
        await sinks.store_dead_letters(conn, batch)

    stored = await sinks.store_dead_letters_singly(conn, batch, now_ms=NOW_MS)

    assert [d.reason for d in stored.letters] == ["store_refused"]
    assert stored.lost == 0
    rows = query("SELECT reason, detail FROM dead_letters WHERE device_id = 'dl-2' ORDER BY id")
    assert [r[0] for r in rows] == ["schema", "store_refused", "schema"]
    assert rows[1][1].startswith("the database refused a 'schema' dead letter: DatetimeFieldOverflow")


async def test_the_session_writes_a_refused_batch_row_by_row_at_once_instead_of_retrying(database):
    session = RetryingSession(database, sinks.prepare)
    batch = [record("sess-1", 1), record("sess-1", 2, metric="x\x00"), record("sess-1", 3, ts_ms=10**17)]
    retries, fallbacks = metrics.STORE_RETRIES._value.get(), metrics.STORE_FALLBACKS._value.get()

    stored = await asyncio.wait_for(session.run(
        lambda c: sinks.store_records(c, batch),
        refused=lambda c: sinks.store_records_singly(c, batch, now_ms=NOW_MS)), timeout=10)

    assert [r["seq"] for r in stored.records] == [1, 2]
    assert [d.reason for d in stored.letters] == ["store_refused"]
    assert metrics.STORE_RETRIES._value.get() == retries
    assert metrics.STORE_FALLBACKS._value.get() == fallbacks + 1
    # The next batch goes the fast way on the same session.
    again = await session.run(lambda c: sinks.store_records(c, [record("sess-1", 4)]))
    assert again.readings == 2


async def test_the_session_retries_a_lost_connection_until_the_write_lands(database):
    session = RetryingSession(database, sinks.prepare)
    await session.run(lambda c: sinks.store_records(c, [record("lost-1", 1)]))
    retries = metrics.STORE_RETRIES._value.get()
    killed = []

    async def work(c: psycopg.AsyncConnection):
        if not killed:  # the server ends this session before the first attempt writes
            killed.append(query("SELECT pg_terminate_backend(%s)", c.info.backend_pid))
        return await sinks.store_records(c, [record("lost-1", 2)])

    stored = await asyncio.wait_for(session.run(work), timeout=30)

    assert stored.readings == 2
    assert metrics.STORE_RETRIES._value.get() == retries + 1
    assert {seq for seq, _, _ in readings_of("lost-1")} == {1, 2}
