"""The pure steps of the shared consume loop: which records of a batch are stored, and which offsets follow.

The loop itself runs against a real broker and database in tests/integration/test_claims_consumer.py
and through the whole pipeline in tests/e2e.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from vigil.topic_consumer import ConsumerSpec, decode_batch, next_offsets, pause

log = logging.getLogger("tests.topic_consumer")


class Refused(ValueError):
    """What the test decoder raises for a record that could never be stored."""


def decode_number(value: bytes | None) -> int:
    if not value:
        raise Refused("empty record value")
    if not value.isdigit():
        raise Refused(f"{value!r} is not a number")
    return int(value)


def spec(refusals: list[None]) -> ConsumerSpec[int, None]:
    async def write(conn, events):
        raise AssertionError("decoding never writes")

    return ConsumerSpec(name="number consumer", noun="number", topic="numbers", group_id="numbers",
                        decode=decode_number, refused=Refused, write=write, written=lambda events, result: None,
                        count_refused=lambda: refusals.append(None), count_retry=lambda: None, log=log)


def record(partition: int, offset: int, value: bytes | None, key: bytes = b"k") -> ConsumerRecord:
    return ConsumerRecord(topic="numbers", partition=partition, offset=offset, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key),
                          serialized_value_size=len(value or b""), headers=())


P0, P1 = TopicPartition("numbers", 0), TopicPartition("numbers", 1)


def test_a_batch_decodes_in_fetch_order_across_partitions() -> None:
    refusals: list[None] = []
    batches = {P0: [record(0, 7, b"1"), record(0, 8, b"2")], P1: [record(1, 3, b"3")]}
    assert decode_batch(spec(refusals), batches) == [1, 2, 3]
    assert refusals == []


def test_refused_records_are_skipped_counted_and_logged_where_they_lie(caplog) -> None:
    refusals: list[None] = []
    batches = {P0: [record(0, 7, b"1"), record(0, 8, b"junk", key=b"dev-9"), record(0, 9, None)],
               P1: [record(1, 3, b"3")]}
    with caplog.at_level(logging.ERROR, logger=log.name):
        assert decode_batch(spec(refusals), batches) == [1, 3]
    assert len(refusals) == 2
    assert [r.name for r in caplog.records] == [log.name, log.name]
    assert caplog.messages == [
        "skipping malformed number numbers[0]@8 (key b'dev-9'): b'junk' is not a number",
        "skipping malformed number numbers[0]@9 (key b'k'): empty record value",
    ]


def test_a_batch_of_refusals_only_leaves_nothing_to_write() -> None:
    refusals: list[None] = []
    assert decode_batch(spec(refusals), {P1: [record(1, 0, b""), record(1, 1, b"x")]}) == []
    assert len(refusals) == 2


def test_a_decoder_bug_is_not_a_refusal_and_skips_nothing() -> None:
    """Only the declared refusal is skipped; anything else stops the batch, so it is fetched again."""
    refusals: list[None] = []
    broken = dataclasses.replace(spec(refusals), decode=lambda value: 1 // 0)
    with pytest.raises(ZeroDivisionError):
        decode_batch(broken, {P0: [record(0, 0, b"1")]})
    assert refusals == []


def test_the_offsets_committed_are_each_partitions_next_record() -> None:
    batches = {P0: [record(0, 7, b"1"), record(0, 8, b"junk")], P1: [record(1, 3, b"3")]}
    assert next_offsets(batches) == {P0: 9, P1: 4}


async def test_a_pause_ends_at_once_when_the_service_is_stopping() -> None:
    stopping = asyncio.Event()
    stopping.set()
    await asyncio.wait_for(pause(stopping, 3600), 1)


async def test_a_pause_runs_its_time_while_the_service_goes_on() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await pause(stopping, 0.05)
    assert loop.time() - started >= 0.05
    assert not stopping.is_set()
