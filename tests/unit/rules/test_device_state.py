"""DeviceState survives the Faust table: a JSON round trip between two batches changes nothing."""

from __future__ import annotations

import json

import pytest

from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.lateness import Judgement, judge_device
from vigil.rules.state import DeviceState

T0_MS = 1_795_312_800_000  # 2026-11-22T02:00:00Z
NOW_MS = T0_MS + 86_400_000
MINUTE_MS = 60_000

Reading = tuple[int, str, float]


def through_json(state: DeviceState) -> DeviceState:
    """What the table's changelog gives back: the state as JSON text, parsed again."""
    return DeviceState.from_dict(json.loads(json.dumps(state.to_dict())))


def judge(state: DeviceState, readings: list[Reading]) -> Judgement:
    return judge_device(state, readings, rules=DEFAULT_RULES, device_id="wb-000123", member_id="mem-42",
                        now_ms=NOW_MS)


def per_minute(metric: str, values: list[float], start: int = 0, second: int = 10) -> list[Reading]:
    return [(T0_MS + (start + i) * MINUTE_MS + second * 1000, metric, float(v)) for i, v in enumerate(values)]


# Tachycardia raised and cleared, with two readings a minute, the watch off for a while, a little
# walking; a leak raised, long enough for an incident, and dried out, with a reading every 20 s; a fall
# the member did not get up from.
SCENARIO: list[Reading] = sorted(
    per_minute("heart_rate", [72] * 3 + [135] * 12 + [100] * 6 + [140] * 4 + [90] * 2)
    + per_minute("heart_rate", [70] * 3 + [125] * 12 + [104] * 6 + [150] * 4 + [90] * 2, second=40)
    + per_minute("worn", [1] * 21 + [0] * 4 + [1] * 2, second=1)
    + per_minute("steps", [30] * 3 + [5] * 12 + [0] * 12, second=50)
    + [(T0_MS + s * 20_000, "water_leak", 1.0 if 3 <= s < 70 else 0.0) for s in range(90)]
    + [(T0_MS + 25 * MINUTE_MS + 15_000, "fall", 1.0)]
    + [(T0_MS + 27 * MINUTE_MS, "battery", 77.0)]
)


def uninterrupted() -> tuple[Judgement, DeviceState]:
    state = DeviceState()
    return judge(state, SCENARIO), state


def test_the_scenario_raises_and_clears_and_opens_incidents():
    judgement, _ = uninterrupted()

    assert [(c.change, c.type) for c in judgement.alerts if c.change != "updated"] == [
        ("raised", "water_leak"),
        ("raised", "tachycardia"),
        ("cleared", "tachycardia"),
        ("raised", "fall"),
        ("cleared", "water_leak"),
    ]
    assert [i.kind for i in judgement.incidents] == ["water_damage", "accident"]


@pytest.mark.parametrize("cut", [0, 1, 50, 200, 333, len(SCENARIO) - 1, len(SCENARIO)])
def test_round_trip_is_lossless(cut):
    state = DeviceState()
    judge(state, SCENARIO[:cut])

    restored = through_json(state)

    assert restored == state
    assert restored.to_dict() == state.to_dict()


def test_the_tables_in_memory_copy_reads_back_the_same_without_sharing_the_buffer():
    state = DeviceState()
    judge(state, SCENARIO[:200])
    saved = state.to_dict()

    restored = DeviceState.from_dict(saved)
    restored.buffer.append((0, "battery", 1.0))

    assert DeviceState.from_dict(saved) == state
    assert restored.buffer[:-1] == state.buffer


def test_nothing_stored_is_a_fresh_state():
    assert DeviceState.from_dict(None) == DeviceState()
    assert DeviceState.from_dict({}) == DeviceState()


@pytest.mark.parametrize("cut", range(len(SCENARIO) + 1))
def test_a_json_round_trip_at_any_point_changes_nothing(cut):
    expected, expected_state = uninterrupted()
    state = DeviceState()

    before = judge(state, SCENARIO[:cut])
    state = through_json(state)
    after = judge(state, SCENARIO[cut:])

    assert before.alerts + after.alerts == expected.alerts
    assert before.incidents + after.incidents == expected.incidents
    assert state.to_dict() == expected_state.to_dict()


def test_one_reading_per_batch_with_a_round_trip_after_each():
    # A slow device: every message is one reading, and the worker restarts between each.
    expected, expected_state = uninterrupted()
    state, alerts, incidents = DeviceState(), [], []

    for reading in SCENARIO:
        judgement = judge(state, [reading])
        alerts += judgement.alerts
        incidents += judgement.incidents
        state = through_json(state)

    assert sorted(alerts, key=lambda a: a.alert_id) == sorted(expected.alerts, key=lambda a: a.alert_id)
    assert incidents == expected.incidents
    assert state.to_dict() == expected_state.to_dict()


def test_a_restored_open_alert_is_cleared_under_its_own_id():
    state = DeviceState()
    cut = T0_MS + 16 * MINUTE_MS
    raised = judge(state, [r for r in SCENARIO if r[0] < cut]).alerts
    opened = {c.type: c.alert_id for c in raised if c.change == "raised"}
    assert set(opened) == {"tachycardia", "water_leak"}

    cleared = judge(through_json(state), [r for r in SCENARIO if r[0] >= cut]).alerts

    assert {c.type: c.alert_id for c in cleared if c.change == "cleared"} == opened


def test_a_state_saved_by_the_first_version_keeps_its_open_alerts():
    # What the detect agent stored before checkpoints: per-minute sums, span progress, open episodes.
    first_version = {
        "watermark_ms": T0_MS + 10 * MINUTE_MS,
        "minutes": {"heart_rate": {str(T0_MS // MINUTE_MS + 9): [260.0, 2]}},
        "evaluated_minute": {"tachycardia": T0_MS // MINUTE_MS + 9},
        "spans": {"water_leak": {"last_ms": T0_MS, "run_start_ms": None, "run_last_ms": None, "run_count": 0,
                                 "clear_start_ms": None}},
        "open": {"tachycardia": {"alert_id": "a1", "triggered_at_ms": T0_MS + 10 * MINUTE_MS}},
    }
    state = DeviceState.from_dict(json.loads(json.dumps(first_version)))

    late = judge(state, per_minute("heart_rate", [150], start=5))
    cleared = judge(state, per_minute("heart_rate", [100] * 5, start=10) + per_minute("battery", [80], start=15))

    assert late.too_late == 1
    assert [(c.change, c.alert_id, c.cleared_at_ms) for c in cleared.alerts] == [
        ("cleared", "a1", T0_MS + 15 * MINUTE_MS)]
