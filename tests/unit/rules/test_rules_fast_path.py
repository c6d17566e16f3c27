"""In-order batches go on from the head state instead of replaying the buffer: the same alerts, incidents
and state as the full replay, for every labelled scenario, with the state through JSON between calls.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from simulators.labelled import LIBRARY
from tests.unit.rules.busy_device import straggling
from tests.unit.rules.story import judge
from tests.unit.simulators.labelled_messages import scenario_messages
from vigil.rules import lateness
from vigil.rules.state import DeviceState


def _deliver(messages: list[list], *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list, dict]:
    monkeypatch.setattr(lateness, "FAST_PATH", fast)
    monkeypatch.setattr(lateness, "HEAD_MIN_BUFFERED", 0)  # the fast path whenever it can be taken
    saved, alerts, incidents = None, [], []
    for message in messages:
        state = DeviceState.from_dict(json.loads(saved) if saved else None)
        judgement = judge(message, state=state)
        alerts += judgement.alerts
        incidents += judgement.incidents
        saved = json.dumps(state.to_dict())
    return alerts, incidents, json.loads(saved)


@pytest.mark.parametrize("scenario", LIBRARY, ids=lambda s: s.name)
def test_in_order_delivery_through_the_head_is_the_full_replay(scenario, monkeypatch):
    messages, _ = scenario_messages(scenario)

    fast = _deliver(messages, fast=True, monkeypatch=monkeypatch)
    assert fast == _deliver(messages, fast=False, monkeypatch=monkeypatch)


@pytest.mark.parametrize("scenario", LIBRARY, ids=lambda s: s.name)
def test_the_delivery_order_of_each_scenario_gives_the_same_through_the_head(scenario, monkeypatch):
    messages, order = scenario_messages(scenario)
    delivered = [messages[i] for i in order]

    fast = _deliver(delivered, fast=True, monkeypatch=monkeypatch)
    assert fast == _deliver(delivered, fast=False, monkeypatch=monkeypatch)


def test_the_fast_path_is_taken_for_in_order_batches_and_a_state_without_a_head_replays_once(monkeypatch):
    calls = []
    original = lateness.Replay.run

    def counting(self, readings, settle_before_ms):
        calls.append(len(readings))
        return original(self, readings, settle_before_ms)

    monkeypatch.setattr(lateness.Replay, "run", counting)
    monkeypatch.setattr(lateness, "HEAD_MIN_BUFFERED", 0)
    messages, _ = scenario_messages(LIBRARY[0])
    state = DeviceState()
    for message in messages[:3]:
        judge(message, state=state)
    assert state.head is not None
    calls.clear()
    judge(messages[3], state=state)
    assert calls[0] == len(messages[3])  # the head replay judges the new readings only

    saved = state.to_dict()
    del saved["head"]  # as saved before heads were kept
    old = DeviceState.from_dict(saved)
    buffered = len(old.buffer)
    calls.clear()
    judge(messages[4], state=old)
    assert calls == [buffered + len(messages[4])]  # the full replay, once
    assert old.head is not None
    calls.clear()
    judge(messages[5], state=old)
    assert calls[0] == len(messages[5])


@pytest.mark.parametrize("per_message", [1, 4, 40])
def test_a_busy_device_with_every_rule_gives_the_same_through_the_head(per_message, monkeypatch):
    from tests.unit.rules.busy_device import INSTANTS, SCENARIO

    cut = {ts: i // per_message for i, ts in enumerate(INSTANTS)}
    messages: dict[int, list] = {}
    for reading in SCENARIO:
        messages.setdefault(cut[reading[0]], []).append(reading)
    batches = list(messages.values())

    fast = _deliver(batches, fast=True, monkeypatch=monkeypatch)
    assert fast[0] and fast[1]  # alerts and incidents both
    assert fast == _deliver(batches, fast=False, monkeypatch=monkeypatch)


def test_a_small_buffer_keeps_no_head():
    messages, _ = scenario_messages(LIBRARY[0])
    state = DeviceState()
    judge(messages[0][:2], state=state)
    assert len(state.buffer) < lateness.HEAD_MIN_BUFFERED
    assert state.head is None


def test_a_flood_beyond_the_buffer_limit_gives_the_same_through_the_head(monkeypatch):
    from tests.unit.rules.story import at

    readings = [(at(0, 0) + i * 20, metric, float(value)) for i in range(3000)
                for metric, value in (("heart_rate", 130 + i % 7), ("water_leak", 1))]
    batches = [readings[i:i + 10] for i in range(0, len(readings), 10)]

    fast = _deliver(batches, fast=True, monkeypatch=monkeypatch)
    assert len(fast[2]["buffer"]) == lateness.MAX_BUFFERED_READINGS
    assert fast == _deliver(batches, fast=False, monkeypatch=monkeypatch)


def _deliver_in_memory(messages: list[list], monkeypatch: pytest.MonkeyPatch) -> tuple[list, list, dict]:
    """As the stream worker judges a device it keeps live: one state object from the first call to the last."""
    monkeypatch.setattr(lateness, "HEAD_MIN_BUFFERED", 0)
    state, alerts, incidents = DeviceState(), [], []
    for message in messages:
        judgement = judge(message, state=state)
        alerts += judgement.alerts
        incidents += judgement.incidents
        counted = {metric: count for metric, count in state.buffer_metrics.items() if count}
        assert counted == Counter(metric for _, metric, _ in state.buffer)
    return alerts, incidents, json.loads(json.dumps(state.to_dict()))


@pytest.mark.parametrize("scenario", LIBRARY, ids=lambda s: s.name)
def test_a_state_kept_in_memory_counts_its_buffer_and_judges_as_one_read_back_each_time(scenario, monkeypatch):
    messages, _ = scenario_messages(scenario)

    assert _deliver_in_memory(messages, monkeypatch) == _deliver(messages, fast=True, monkeypatch=monkeypatch)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_busy_device_kept_in_memory_counts_its_buffer_through_stragglers(seed, monkeypatch):
    messages = straggling(seed, max_delay_s=90)

    assert _deliver_in_memory(messages, monkeypatch) == _deliver(messages, fast=True, monkeypatch=monkeypatch)
