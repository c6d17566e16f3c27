"""Records Faust's consumer fetched but dropped because their partition was paused are read again
(`streams.faust_fixes`, fix 6), through Faust's own `getmany` with the correction around it; the
consumer thread and its aiokafka consumer are stand-ins that keep positions as aiokafka does."""

from __future__ import annotations

import inspect
from collections import defaultdict
from types import SimpleNamespace

from faust.transport.consumer import Consumer
from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from streams.faust_fixes import _dropped_read_again, rewinds, unread

TELEMETRY = TP("vigil.telemetry", 0)
HEARTBEATS = TP("vigil.heartbeats", 0)
CHANGELOG = TP("vigil-streams-device-state-changelog", 0)


def _records(first: int, last: int) -> list:
    return [SimpleNamespace(offset=o) for o in range(first, last + 1)]


class _KafkaConsumer:
    """The aiokafka consumer in Faust's consumer thread: positions, as a fetch and the seeks leave them."""

    def __init__(self) -> None:
        self.positions: dict = {}
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
    """Just what Faust's `Consumer.getmany` and its drain read, around fetches the test scripts.

    `fetch` hands on one scripted batch as Faust's drain loop does (each record read moves the
    read offset); `fetch_next` starts the next fetch, which is where dropped records are sought.
    """

    getmany = inspect.unwrap(Consumer.getmany)

    def __init__(self, *, committed: dict | None = None) -> None:
        self._committed_offset = dict(committed or {})
        self._read_offset: dict = defaultdict(lambda: None)
        self._buffered_partitions: set = set()
        self.flow_active, self.should_stop = True, False
        self.app = SimpleNamespace(consumer_generation_id=1,
                                   monitor=SimpleNamespace(track_tp_end_offset=lambda tp, hw: None))
        self.scheduler = DefaultSchedulingStrategy()
        self.kafka = _KafkaConsumer()
        self._thread = _Thread(self.kafka)
        self.batch: tuple[dict, set] = ({}, set())
        self.during_fetch = lambda: None
        self.stop_flow_after: int | None = None
        self.handed_on = 0

    @_dropped_read_again
    async def _wait_next_records(self, timeout: float):
        fetched, active = self.batch
        for tp, records in fetched.items():  # aiokafka moves each partition past what it returns
            self.kafka.positions[tp] = records[-1].offset + 1
        self.during_fetch()
        self.batch, self.during_fetch = ({}, set()), lambda: None
        return fetched, active

    def _to_message(self, tp, record):
        self.handed_on += 1
        if self.stop_flow_after is not None and self.handed_on >= self.stop_flow_after:
            self.flow_active = False  # a rebalance begins while the batch is handed on
        return SimpleNamespace(tp=tp, offset=record.offset)

    def highwater(self, tp) -> int:
        return 0

    def seek_to_committed(self) -> None:
        """What the recovery's `perform_seek` does: positions and read offsets to the committed ones."""
        for tp, offset in self._committed_offset.items():
            self.kafka.seek(tp, offset)
            self._read_offset[tp] = offset

    async def fetch(self, fetched: dict, active: set) -> list:
        self.batch = (fetched, active)
        handed = []
        async for tp, message in self.getmany(timeout=1.0):
            r_offset = self._read_offset[tp]
            if r_offset is None or message.offset >= r_offset:
                self._read_offset[tp] = message.offset
                handed.append((tp, message.offset))
        return handed

    async def fetch_next(self) -> None:
        await self.fetch({}, set())


async def test_records_of_a_partition_paused_during_the_fetch_are_read_again_from_the_first():
    consumer = _Consumer()
    handed = await consumer.fetch({TELEMETRY: _records(10, 12), HEARTBEATS: _records(82, 86)}, active={TELEMETRY})
    assert handed == [(TELEMETRY, 10), (TELEMETRY, 11), (TELEMETRY, 12)]
    await consumer.fetch_next()
    assert consumer.kafka.seeks == [(HEARTBEATS, 82)]
    assert consumer.kafka.positions == {TELEMETRY: 13, HEARTBEATS: 82}


async def test_a_batch_handed_on_whole_seeks_nothing():
    consumer = _Consumer()
    fetched = {TELEMETRY: _records(10, 12), HEARTBEATS: _records(82, 83)}
    assert len(await consumer.fetch(fetched, active={TELEMETRY, HEARTBEATS})) == 5
    await consumer.fetch_next()
    assert consumer.kafka.seeks == []


async def test_a_batch_cut_short_by_a_rebalance_is_read_again_from_the_first_record_not_handed_on():
    consumer = _Consumer()
    consumer.stop_flow_after = 2
    assert await consumer.fetch({TELEMETRY: _records(10, 14)}, active={TELEMETRY}) == [(TELEMETRY, 10), (TELEMETRY, 11)]
    consumer.flow_active = True  # the rebalance is over, and kept the partition
    await consumer.fetch_next()
    assert consumer.kafka.seeks == [(TELEMETRY, 12)]


async def test_a_seek_to_the_committed_offsets_during_the_fetch_is_not_undone():
    # The recovery sought telemetry back to 7 to read again what its queues lost; seeking to the
    # dropped 10 afterwards would skip 7-9.
    consumer = _Consumer(committed={TELEMETRY: 7})
    consumer.during_fetch = consumer.seek_to_committed
    assert await consumer.fetch({TELEMETRY: _records(10, 12)}, active=set()) == []
    await consumer.fetch_next()
    assert consumer.kafka.seeks == [(TELEMETRY, 7)]  # the recovery's, and nothing after it
    assert consumer.kafka.positions[TELEMETRY] == 7


async def test_a_seek_to_the_committed_offsets_after_the_fetch_is_not_undone():
    consumer = _Consumer(committed={TELEMETRY: 7})
    assert await consumer.fetch({TELEMETRY: _records(10, 12)}, active=set()) == []
    consumer.seek_to_committed()  # the recovery, between this fetch and the next
    await consumer.fetch_next()
    assert consumer.kafka.positions[TELEMETRY] == 7


async def test_dropped_changelog_records_are_read_again_when_nothing_sought_since_the_fetch():
    # The recovery sought the changelog to 0, then a fetch begun before the rebalance (its set of
    # active partitions emptied meanwhile, so "all") returned 0-3 while the partition was paused.
    consumer = _Consumer()
    handed = await consumer.fetch({CHANGELOG: _records(0, 3), TELEMETRY: _records(10, 11)}, active={TELEMETRY})
    assert handed == [(TELEMETRY, 10), (TELEMETRY, 11)]
    await consumer.fetch_next()
    assert consumer.kafka.seeks == [(CHANGELOG, 0)]
    assert consumer.kafka.positions[CHANGELOG] == 0


async def test_a_changelog_partition_the_recovery_sought_after_the_fetch_is_left_where_it_put_it():
    consumer = _Consumer()
    assert await consumer.fetch({CHANGELOG: _records(5, 8)}, active=set()) == []
    consumer.kafka.positions[CHANGELOG] = 2  # the recovery's seek, after the fetch
    await consumer.fetch_next()
    assert consumer.kafka.seeks == []
    assert consumer.kafka.positions[CHANGELOG] == 2


async def test_records_read_again_are_handed_on_and_sought_no_more():
    consumer = _Consumer()
    await consumer.fetch({HEARTBEATS: _records(82, 86)}, active=set())
    assert await consumer.fetch({HEARTBEATS: _records(82, 86)}, active={HEARTBEATS}) == [
        (HEARTBEATS, o) for o in range(82, 87)]
    await consumer.fetch_next()
    assert consumer.kafka.seeks == [(HEARTBEATS, 82)]
    assert consumer.kafka.positions[HEARTBEATS] == 87


async def test_a_partition_revoked_since_the_fetch_is_left_to_its_new_owner():
    consumer = _Consumer()
    await consumer.fetch({HEARTBEATS: _records(82, 86)}, active=set())
    consumer.kafka.assignment = lambda: {TELEMETRY}
    await consumer.fetch_next()
    assert consumer.kafka.seeks == []


def test_rewinds_name_where_the_fetch_left_each_partition_and_where_to_put_it_back():
    fetched = {"a": _records(5, 9), "b": _records(0, 3)}
    assert rewinds(fetched, {"a": 7, "b": 0}) == {"a": (10, 7), "b": (4, 0)}


def test_unread_is_everything_after_the_last_record_handed_on():
    fetched = {"a": _records(5, 9), "b": _records(1, 2), "c": _records(3, 4)}
    assert unread(fetched, {"a": 6, "b": 2}) == {"a": 7, "c": 3}
