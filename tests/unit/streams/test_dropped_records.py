"""Records Faust's consumer fetched but dropped because their partition was paused are read again
(`streams.faust_fixes`, fix 6), through Faust's own `getmany` with the correction around it; the
consumer thread and its aiokafka consumer are stand-ins that keep positions as aiokafka does."""

from __future__ import annotations

import inspect
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from streams.faust_fixes import _count_seeks, _dropped_read_again, _keep_fetched, read_again_from, rewinds, unread

TELEMETRY = TP("vigil.telemetry", 0)
HEARTBEATS = TP("vigil.heartbeats", 0)
CHANGELOG = TP("vigil-streams-device-state-changelog", 0)


def _records(first: int, last: int) -> list:
    return [SimpleNamespace(offset=o) for o in range(first, last + 1)]


class _KafkaConsumer:
    """The aiokafka consumer in Faust's consumer thread: positions, as a fetch and the seeks leave them."""

    def __init__(self, positions: dict) -> None:
        self.positions = dict(positions)
        self.seeks: list[tuple] = []

    def assignment(self) -> set:
        return {TELEMETRY, HEARTBEATS, CHANGELOG}

    async def position(self, tp) -> int:
        return self.positions[tp]

    def seek(self, tp, offset: int) -> None:
        self.positions[tp] = offset
        self.seeks.append((tp, offset))


class _Thread:
    """Faust's consumer thread, running what it is handed at once."""

    def __init__(self, kafka: _KafkaConsumer) -> None:
        self.kafka = kafka

    def _ensure_consumer(self) -> _KafkaConsumer:
        return self.kafka

    async def call_thread(self, fun, *args):
        return await fun(*args)


class _Consumer:
    """Just what Faust's `Consumer.getmany` reads, around a fetch the test scripts."""

    getmany = _dropped_read_again(inspect.unwrap(Consumer.getmany))

    def __init__(self, fetched: dict, active: set, *, committed: dict | None = None,
                 seek_during_fetch: bool = False, stop_flow_after: int | None = None) -> None:
        self.fetched, self.active = fetched, active
        self.seek_during_fetch, self.stop_flow_after = seek_during_fetch, stop_flow_after
        self._committed_offset = dict(committed or {})
        self._buffered_partitions: set = set()
        self.flow_active, self.should_stop = True, False
        self.app = SimpleNamespace(consumer_generation_id=1,
                                   monitor=SimpleNamespace(track_tp_end_offset=lambda tp, hw: None))
        self.scheduler = DefaultSchedulingStrategy()
        self.sought: list[dict] = []
        self.handed_on = 0
        # aiokafka moved each fetched partition past the records it returned.
        self._thread = _Thread(_KafkaConsumer({tp: records[-1].offset + 1 for tp, records in fetched.items()}))

    @_keep_fetched
    async def _wait_next_records(self, timeout: float):
        if self.seek_during_fetch:
            await self.perform_seek()
        return self.fetched, self.active

    @_count_seeks
    async def perform_seek(self) -> None:
        self.sought.append({"committed": True})

    def _to_message(self, tp, record):
        self.handed_on += 1
        if self.stop_flow_after is not None and self.handed_on >= self.stop_flow_after:
            self.flow_active = False  # a rebalance begins while the batch is handed on
        return SimpleNamespace(tp=tp, offset=record.offset)

    def highwater(self, tp) -> int:
        return 0

    def assignment(self) -> set:
        return {TELEMETRY, HEARTBEATS, CHANGELOG}

    def _is_changelog_tp(self, tp) -> bool:
        return tp == CHANGELOG

    async def seek_wait(self, partitions: dict) -> None:
        self.sought.append(dict(partitions))


async def _drain(consumer: _Consumer) -> list:
    return [(tp, message.offset) async for tp, message in consumer.getmany(timeout=1.0)]


async def test_records_of_a_partition_paused_during_the_fetch_are_read_again_from_the_first():
    consumer = _Consumer({TELEMETRY: _records(10, 12), HEARTBEATS: _records(82, 86)}, active={TELEMETRY})
    handed = await _drain(consumer)
    assert handed == [(TELEMETRY, 10), (TELEMETRY, 11), (TELEMETRY, 12)]
    assert consumer.sought == [{HEARTBEATS: 82}]


async def test_a_batch_handed_on_whole_seeks_nothing():
    consumer = _Consumer({TELEMETRY: _records(10, 12), HEARTBEATS: _records(82, 83)},
                         active={TELEMETRY, HEARTBEATS})
    assert len(await _drain(consumer)) == 5
    assert consumer.sought == []


async def test_a_batch_cut_short_by_a_rebalance_is_read_again_from_the_first_record_not_handed_on():
    consumer = _Consumer({TELEMETRY: _records(10, 14)}, active={TELEMETRY}, stop_flow_after=2)
    assert await _drain(consumer) == [(TELEMETRY, 10), (TELEMETRY, 11)]
    assert consumer.sought == [{TELEMETRY: 12}]


async def test_a_seek_to_the_committed_offsets_during_the_fetch_is_not_undone():
    # The recovery sought telemetry back to 7 to read again what its queues lost; seeking to the
    # dropped 10 afterwards would skip 7-9.
    consumer = _Consumer({TELEMETRY: _records(10, 12)}, active=set(), committed={TELEMETRY: 7},
                         seek_during_fetch=True)
    assert await _drain(consumer) == []
    assert consumer.sought == [{"committed": True}, {TELEMETRY: 7}]


async def test_dropped_changelog_records_are_read_again_when_nothing_sought_since_the_fetch():
    # The recovery sought the changelog to 0, then a fetch begun before the rebalance (its set of
    # active partitions emptied meanwhile, so "all") returned 0-3 while the partition was paused.
    consumer = _Consumer({CHANGELOG: _records(0, 3), TELEMETRY: _records(10, 11)}, active={TELEMETRY})
    assert await _drain(consumer) == [(TELEMETRY, 10), (TELEMETRY, 11)]
    assert consumer._thread.kafka.seeks == [(CHANGELOG, 0)]
    assert consumer._thread.kafka.positions[CHANGELOG] == 0
    assert consumer.sought == []  # telemetry was handed on whole


async def test_a_changelog_partition_the_recovery_sought_after_the_fetch_is_left_where_it_put_it():
    consumer = _Consumer({CHANGELOG: _records(5, 8)}, active=set())
    consumer._thread.kafka.positions[CHANGELOG] = 2  # the recovery's seek, after the fetch
    assert await _drain(consumer) == []
    assert consumer._thread.kafka.seeks == []
    assert consumer._thread.kafka.positions[CHANGELOG] == 2


async def test_a_changelog_partition_handed_on_whole_is_not_touched():
    consumer = _Consumer({CHANGELOG: _records(0, 3)}, active={CHANGELOG})
    assert len(await _drain(consumer)) == 4
    assert consumer._thread.kafka.seeks == [] and consumer.sought == []


def test_rewinds_name_where_the_fetch_left_each_partition_and_where_to_put_it_back():
    fetched = {"a": _records(5, 9), "b": _records(0, 3)}
    assert rewinds(fetched, {"a": 7, "b": 0}) == {"a": (10, 7), "b": (4, 0)}


def test_unread_is_everything_after_the_last_record_handed_on():
    fetched = {"a": _records(5, 9), "b": _records(1, 2), "c": _records(3, 4)}
    assert unread(fetched, {"a": 6, "b": 2}) == {"a": 7, "c": 3}


def test_read_again_from_the_earlier_of_the_dropped_record_and_a_seek_made_meanwhile():
    dropped = {"a": 10, "b": 10, "c": 10}
    committed = {"a": 7, "b": 12, "c": None}
    assert read_again_from(dropped, committed, sought_meanwhile=False) == dropped
    assert read_again_from(dropped, committed, sought_meanwhile=True) == {"a": 7, "b": 10, "c": 10}
