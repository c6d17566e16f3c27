"""When the worker writes device states, and what it writes: the rules that keep offsets behind state."""

from __future__ import annotations

import asyncio
import tracemalloc

import orjson

from streams.device_states import DeviceStates, stored
from vigil.rules import state_codec
from vigil.rules.state import DeviceState


def _states(table: dict, owned: set[bytes] | None = None) -> DeviceStates:
    return DeviceStates(table, owned=lambda keys: {k for k in keys if owned is None or k in owned})


def _judge(states: DeviceStates, key: bytes, watermark_ms: int) -> DeviceState:
    """What detection does to a device: take its state, change it, mark it changed."""
    state = states.get(key)
    state.watermark_ms = watermark_ms
    state.buffer.append((watermark_ms, "water_leak", 1.0))
    states.changed(key)
    return state


def test_a_device_judged_many_times_between_commits_is_written_once_with_its_latest_state():
    table: dict[bytes, bytes] = {}
    states = _states(table)
    for watermark in (1_000, 2_000, 3_000):
        _judge(states, b"d-1", watermark)
    _judge(states, b"d-2", 5_000)
    assert table == {}  # nothing reaches the changelog between commits
    assert states.flush() == 2
    assert stored(table[b"d-1"]).watermark_ms == 3_000
    assert len(stored(table[b"d-1"]).buffer) == 3
    assert states.flush() == 0  # no device judged since: nothing written again


def test_what_is_written_is_a_snapshot_that_later_judging_does_not_change():
    table: dict[bytes, bytes] = {}
    states = _states(table)
    state = _judge(states, b"d-1", 1_000)
    states.flush()
    state.watermark_ms = 9_000  # a later batch, not yet flushed
    state.buffer.append((9_000, "water_leak", 0.0))
    assert stored(table[b"d-1"]).watermark_ms == 1_000
    assert stored(table[b"d-1"]).buffer == [(1_000, "water_leak", 1.0)]


def test_a_state_is_read_from_the_table_once_and_then_kept_live():
    saved = DeviceState(watermark_ms=7_000, settled_ms=6_000, buffer=[(6_500, "smoke", 0.0)])
    table = {b"d-1": state_codec.encode(saved)}
    states = _states(table)
    first = states.get(b"d-1")
    assert first.watermark_ms == 7_000 and first.buffer == [(6_500, "smoke", 0.0)]
    table[b"d-1"] = state_codec.encode(DeviceState(watermark_ms=1))
    assert states.get(b"d-1") is first  # the live state, not a fresh decode
    assert states.get(b"unknown") == DeviceState()


def test_a_state_written_by_the_previous_release_is_read():
    # Before live states the table's own JSON codec wrote `to_dict()`; the bytes are the same JSON.
    old = DeviceState(watermark_ms=4_000, settled_ms=3_000, buffer=[(3_500, "co_ppm", 12.5)]).to_dict()
    states = _states({b"d-1": orjson.dumps(old)})
    assert states.get(b"d-1").buffer == [(3_500, "co_ppm", 12.5)]


def test_forgetting_drops_live_states_and_the_next_read_is_what_was_written():
    table: dict[bytes, bytes] = {}
    states = _states(table)
    _judge(states, b"d-1", 1_000)
    states.flush()
    _judge(states, b"d-1", 2_000)  # judged, never written: its records are read again by the next owner
    states.forget()
    assert states.live == 0
    assert states.get(b"d-1").watermark_ms == 1_000
    assert states.flush() == 0


def test_a_commit_waits_for_the_batch_being_judged_so_it_never_writes_a_state_whose_alerts_are_not_sent():
    async def scenario() -> list[str]:
        table: dict[bytes, bytes] = {}
        states = _states(table)
        _judge(states, b"d-1", 1_000)
        sent = asyncio.Event()
        order: list[str] = []

        async def judge_a_batch() -> None:
            async with states.lock:
                state = states.get(b"d-1")
                state.watermark_ms = 2_000  # judged...
                await sent.wait()  # ...while its alert change is on its way to Kafka
                order.append("alert sent")
                states.changed(b"d-1")

        async def commit() -> None:
            await states.before_commit()
            order.append(f"written at {stored(table[b'd-1']).watermark_ms}")

        judging = asyncio.create_task(judge_a_batch())
        await asyncio.sleep(0)
        committing = asyncio.create_task(commit())
        await asyncio.sleep(0.01)
        assert table == {}  # the commit waits for the batch
        sent.set()
        await asyncio.gather(judging, committing)
        return order

    assert asyncio.run(scenario()) == ["alert sent", "written at 2000"]


def test_a_hand_over_writes_and_sends_the_dirty_states_then_drops_the_live_ones_until_recovered():
    async def scenario() -> None:
        table: dict[bytes, bytes] = {}
        states = _states(table)
        _judge(states, b"d-1", 1_000)
        sent_with: list[dict] = []

        async def flush_producer() -> None:
            sent_with.append(dict(table))

        before = states.generation
        await states.hand_over(flush_producer)
        assert [list(t) for t in sent_with] == [[b"d-1"]]  # written before the producer was flushed
        assert states.live == 0
        assert states.generation == before + 1
        assert not states.ready.is_set()
        states.recovered()
        assert states.ready.is_set()

    asyncio.run(scenario())


def test_still_owned_asks_the_assignment():
    states = _states({}, owned={b"d-1"})
    assert states.still_owned([b"d-1", b"d-2"]) == {b"d-1"}


def test_the_worker_table_keeps_the_bytes_it_is_given():
    from streams.app import build_app
    from vigil.settings import get_settings

    table = build_app(get_settings()).tables["device-state"]
    assert (table.key_serializer, table.value_serializer) == ("raw", "raw")


def _busy(states: DeviceStates, key: bytes, watermark_ms: int, now_s: float) -> DeviceState:
    """A device judged twice between two flushes, as a device sending several messages a second is."""
    for at in (now_s - 0.2, now_s):
        state = states.get(key)
        state.watermark_ms = watermark_ms
        states.changed(key, now_s=at)
    return state


def test_a_state_judged_once_leaves_memory_when_judged_and_reaches_the_table_at_the_flush():
    table: dict[bytes, bytes] = {}
    states = _states(table)
    _judge(states, b"quiet", 1_000)
    assert states.live == 0  # bytes waiting for the flush...
    assert table == {}  # ...which alone writes to the table
    assert states.flush(now_s=100.0) == 1
    assert states.get(b"quiet").watermark_ms == 1_000  # read back when its device speaks again
    assert states.get(b"quiet").buffer == [(1_000, "water_leak", 1.0)]


def test_a_state_written_when_judged_is_compressed_and_a_busy_one_as_it_is_and_both_read_back():
    table: dict[bytes, bytes] = {}
    states = _states(table)
    quiet = states.get(b"quiet")
    quiet.buffer.extend((1_000 * i, "heart_rate", 72.0) for i in range(40))
    states.changed(b"quiet")
    busy = _busy(states, b"busy", 1_000, now_s=100.0)
    busy.buffer.extend((1_000 * i, "heart_rate", 72.0) for i in range(40))
    states.flush(now_s=100.5)
    assert len(table[b"quiet"]) < len(state_codec.encode(quiet)) / 2
    assert table[b"busy"] == state_codec.encode(busy)
    assert stored(table[b"quiet"]) == quiet
    assert stored(table[b"busy"]) == busy
    assert stored(None) == DeviceState()


def test_a_device_judged_again_before_the_flush_goes_on_from_its_latest_judgement():
    table = {b"d-1": state_codec.encode(DeviceState(watermark_ms=500))}
    states = _states(table)
    _judge(states, b"d-1", 1_000)
    state = states.get(b"d-1")  # its next message, before the flush
    assert (state.watermark_ms, state.buffer) == (1_000, [(1_000, "water_leak", 1.0)])
    assert states.live == 1
    # Judging that message failed, so it was not marked changed: the first judgement is written all the same.
    assert states.flush(now_s=100.0) == 1
    assert stored(table[b"d-1"]).watermark_ms == 1_000


def test_a_device_judged_again_before_the_flush_keeps_its_state_live_while_it_goes_on_speaking():
    from streams.device_states import LIVE_FOR_S

    table: dict[bytes, bytes] = {}
    states = _states(table)
    live = _busy(states, b"busy", 1_000, now_s=100.0)
    now = 100.0
    for watermark in range(2_000, 20_000, 2_000):  # judged in every commit interval, well past LIVE_FOR_S
        now += 2.0
        states.flush(now_s=now)
        assert states.get(b"busy") is live  # never decoded again
        live.watermark_ms = watermark
        states.changed(b"busy", now_s=now)
    states.flush(now_s=now + LIVE_FOR_S - 0.5)
    assert states.get(b"busy") is live
    states.flush(now_s=now + LIVE_FOR_S + 0.5)  # silent for longer than LIVE_FOR_S
    assert states.live == 0
    assert states.get(b"busy").watermark_ms == 18_000


def test_at_most_max_live_busy_states_stay_the_longest_unjudged_dropped_first():
    from streams.device_states import MAX_LIVE

    table: dict[bytes, bytes] = {}
    states = _states(table)
    keys = [f"d-{n}".encode() for n in range(MAX_LIVE + 3)]
    for n, key in enumerate(keys):
        _busy(states, key, 1_000 + n, now_s=100.0 + n / 10_000)
    first = states.get(keys[0])
    states.changed(keys[0], now_s=101.0)  # judged last now, though read first
    states.flush(now_s=101.5)
    assert states.live == MAX_LIVE
    assert states.get(keys[0]) is first
    assert states.live == MAX_LIVE  # the three judged longest ago were dropped...
    dropped = [states.get(key) for key in keys[1:4]]
    assert states.live == MAX_LIVE + 3  # ...and come back from the table as they were written
    assert [state.watermark_ms for state in dropped] == [1_001, 1_002, 1_003]


def test_a_flood_of_devices_judged_once_neither_stays_in_memory_nor_pushes_the_busy_states_out():
    from streams.device_states import MAX_LIVE

    table: dict[bytes, bytes] = {}
    states = _states(table)
    busy = _busy(states, b"busy", 1_000, now_s=100.0)
    for n in range(2 * MAX_LIVE):  # a large fleet, each device once, all judged after the busy one
        key = f"quiet-{n}".encode()
        states.get(key)
        states.changed(key, now_s=100.5)
        assert states.live == 1
    assert states.flush(now_s=101.0) == 2 * MAX_LIVE + 1
    assert states.live == 1
    assert states.get(b"busy") is busy


def test_the_table_keeps_each_value_in_memory_of_its_own_size():
    # The table holds every device's latest state for as long as the worker runs; orjson 3.13
    # returns a small state in a buffer of 4 to 64 KB.
    # (States without buffered readings: tuples freed while tracing stay on CPython's free list,
    # counted as allocated.)
    table: dict[bytes, bytes] = {}
    states = _states(table)
    keys = [f"d-{n}".encode() for n in range(200)]
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for n, key in enumerate(keys):
            states.get(key).announced.update((f"water_leak:{i}", 1_000 + i) for i in range(20))
            states.changed(key)
            if n % 2:  # a busy one, encoded by the flush
                states.get(key)
                states.changed(key)
        states.flush()
        states.forget()  # the busy states' objects: what is left is the table
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 2 * sum(len(value) for value in table.values())


def test_a_hand_over_with_nothing_judged_does_not_wait_for_the_producer():
    async def scenario() -> None:
        states = _states({})

        async def flush_producer() -> None:
            raise AssertionError("a worker that is starting has no producer running to wait for")

        await states.hand_over(flush_producer)
        assert not states.ready.is_set()

    asyncio.run(scenario())
