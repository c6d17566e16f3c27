"""When the worker writes device states, and what it writes: the rules that keep offsets behind state."""

from __future__ import annotations

import asyncio

import orjson

from streams.device_states import DeviceStates
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
    assert state_codec.decode(table[b"d-1"]).watermark_ms == 3_000
    assert len(state_codec.decode(table[b"d-1"]).buffer) == 3
    assert states.flush() == 0  # no device judged since: nothing written again


def test_what_is_written_is_a_snapshot_that_later_judging_does_not_change():
    table: dict[bytes, bytes] = {}
    states = _states(table)
    state = _judge(states, b"d-1", 1_000)
    states.flush()
    state.watermark_ms = 9_000  # a later batch, not yet flushed
    state.buffer.append((9_000, "water_leak", 0.0))
    assert state_codec.decode(table[b"d-1"]).watermark_ms == 1_000
    assert state_codec.decode(table[b"d-1"]).buffer == [(1_000, "water_leak", 1.0)]


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
            order.append(f"written at {state_codec.decode(table[b'd-1']).watermark_ms}")

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


def test_states_not_judged_for_a_while_leave_memory_after_a_flush_and_come_back_as_they_were():
    from streams.device_states import LIVE_FOR_S

    table: dict[bytes, bytes] = {}
    states = _states(table)
    for key, at in ((b"quiet", 100.0), (b"busy", 100.0)):
        states.get(key).watermark_ms = 1_000
        states.changed(key, now_s=at)
    states.flush(now_s=100.5)
    assert states.live == 2  # both judged just now
    states.get(b"busy").watermark_ms = 2_000
    states.changed(b"busy", now_s=100.0 + LIVE_FOR_S)
    states.flush(now_s=100.0 + LIVE_FOR_S + 1)
    assert states.live == 1  # the quiet one is bytes in the table only...
    assert states.get(b"quiet").watermark_ms == 1_000  # ...and read back when its device speaks again
    assert states.get(b"busy").watermark_ms == 2_000


def test_a_hand_over_with_nothing_judged_does_not_wait_for_the_producer():
    async def scenario() -> None:
        states = _states({})

        async def flush_producer() -> None:
            raise AssertionError("a worker that is starting has no producer running to wait for")

        await states.hand_over(flush_producer)
        assert not states.ready.is_set()

    asyncio.run(scenario())
