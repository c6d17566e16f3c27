"""The changelog form of a device's state: exact on the way back, and much smaller than the dict form."""

from __future__ import annotations

import random

import orjson
import pytest

from vigil.rules import state_codec
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.lateness import judge_device
from vigil.rules.state import DeviceState

START_MS = 1_796_000_000_000
WEARABLE = ("heart_rate", "spo2", "steps", "worn", "fall", "battery", "skin_temp")
HOME = ("temperature", "humidity", "battery", "smoke", "co_ppm", "gas_lel", "water_leak", "arc_events",
        "door_open", "motion")


def _value(metric: str, rng: random.Random, minute: int) -> float:
    if metric == "heart_rate":
        return float(rng.randint(60, 80))
    if metric == "spo2":
        return float(rng.randint(95, 99))
    if metric in ("worn",):
        return 1.0
    if metric in ("temperature", "skin_temp"):
        return round(rng.uniform(19, 34), 1)
    if metric == "co_ppm":
        return round(rng.uniform(0, 5), 1)
    if metric == "water_leak":
        return 1.0 if 30 <= minute < 40 else 0.0  # a 10-minute leak: an episode opens and ends
    if metric == "battery":
        return float(rng.randint(20, 100))
    return 0.0


def _messages(metrics: tuple[str, ...], interval_s: int, minutes: int, seed: int = 1):
    rng = random.Random(seed)
    for ts in range(START_MS, START_MS + minutes * 60_000, interval_s * 1000):
        minute = (ts - START_MS) // 60_000
        yield [(ts, metric, _value(metric, rng, minute)) for metric in metrics]


def _judged(metrics, interval_s, minutes, *, through_codec: bool) -> tuple[DeviceState, list]:
    """Judge a device's messages one at a time, optionally sending the state through the codec each time."""
    state, events = DeviceState(), []
    for readings in _messages(metrics, interval_s, minutes):
        judgement = judge_device(state, readings, rules=DEFAULT_RULES, device_id="d-1", member_id="m-1", now_ms=0)
        events += [(e.type, e.change, e.triggered_at_ms, e.cleared_at_ms) for e in judgement.alerts]
        if through_codec:
            state = state_codec.decode(state_codec.encode(state))
    return state, events


@pytest.mark.parametrize(("metrics", "interval_s"), [(WEARABLE, 5), (WEARABLE, 30), (HOME, 60), (HOME, 1)])
def test_decoding_gives_back_exactly_the_state_encoded(metrics, interval_s):
    state, _ = _judged(metrics, interval_s, 50, through_codec=False)
    assert state.buffer and state.checkpoint["minutes"]["buckets"]
    assert state_codec.decode(state_codec.encode(state)) == state


def test_a_device_judged_through_the_codec_after_every_message_raises_and_ends_the_same_alerts():
    plain, plain_events = _judged(HOME, 15, 60, through_codec=False)
    coded, coded_events = _judged(HOME, 15, 60, through_codec=True)
    assert [(kind, change) for kind, change, *_ in plain_events] == [("water_leak", "raised"),
                                                                     ("water_leak", "cleared")]
    assert coded_events == plain_events
    assert coded == plain


def test_a_busy_device_keeps_its_head_through_the_codec():
    state, _ = _judged(WEARABLE, 1, 10, through_codec=False)
    assert state.head is not None  # kept once the buffer holds enough readings
    assert state_codec.decode(state_codec.encode(state)).head == state.head


@pytest.mark.parametrize(("metrics", "interval_s", "at_most"),
                         [(WEARABLE, 5, 0.35), (WEARABLE, 30, 0.5), (HOME, 60, 0.5)])
def test_the_compact_form_is_a_fraction_of_the_dict_form(metrics, interval_s, at_most):
    state, _ = _judged(metrics, interval_s, 90, through_codec=False)
    assert len(state_codec.encode(state)) <= at_most * len(orjson.dumps(state.to_dict()))


def test_a_state_written_in_the_dict_form_is_still_read():
    state, _ = _judged(HOME, 60, 20, through_codec=False)
    assert state_codec.decode(orjson.dumps(state.to_dict())) == state


def test_nothing_stored_is_a_new_state():
    assert state_codec.decode(None) == DeviceState()
    assert state_codec.decode(b"") == DeviceState()


def test_sparse_minutes_are_kept_as_pairs_and_read_back():
    state = DeviceState(checkpoint={"minutes": {"buckets": {"co_ppm": {"100": [2.5, 1], "190": [3.0, 2]}},
                                                "judged_through": 190}, "rules": {}})
    encoded = orjson.loads(state_codec.encode(state))
    assert encoded["c"]["minutes"]["buckets"]["co_ppm"] == {"100": [2.5, 1], "190": [3.0, 2]}
    assert state_codec.decode(state_codec.encode(state)) == state


def test_buffered_values_of_every_size_come_back_exactly():
    values = [72.0, 0.5, -3.0, 1e20, 1e-7, 5e15, 123456789012345678.0, 36.6, 0.0, -0.25, 2.0**53 + 2]
    state = DeviceState(watermark_ms=START_MS, buffer=[(START_MS + i, "co_ppm", v) for i, v in enumerate(values)])

    back = state_codec.decode(state_codec.encode(state))

    assert back.buffer == state.buffer
    assert all(isinstance(value, float) for _, _, value in back.buffer)
    assert b'"co_ppm":[[' in state_codec.encode(state) and b"72," in state_codec.encode(state)
