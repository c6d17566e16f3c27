"""The labelled scenario library says what it contains: each label is checked against docs/rules.md computed here.

The oracle below is a second, deliberately plain reading of docs/rules.md over a scenario's samples in
event time (as if every reading had arrived on time, once): it must find exactly the alerts the
label expects, with their severity, at their `triggered_at`, and nothing else.
"""

from __future__ import annotations

import typing
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta

import pytest

from api.schemas import AlertType
from ingest.validation import judge
from simulators.labelled import LIBRARY, select
from simulators.labelled.library import BY_NAME
from simulators.labelled.messages import delivery_order, plan_messages
from simulators.labelled.model import ALERT_TYPES, ROLES, ReversedBlocks, Sample, Scenario
from tests.unit.simulators.labelled_messages import NOW
from vigil.telemetry import MAX_PAYLOAD_BYTES, MAX_READINGS, RegisteredDevice, to_ms

REPLAY = [s for s in LIBRARY if not s.live]
LIVE = [s for s in LIBRARY if s.live]
Event = tuple[str, str, int]  # type, severity, triggered_at offset

# -- the oracle: docs/rules.md, read plainly ------------------------------------------------------------


def _worn(sample: Sample) -> bool:
    return sample.values.get("worn", 1) == 1


def _points(samples: list[Sample], metric: str, *, health: bool = False) -> list[tuple[int, float]]:
    """(offset, value) of a metric; for a health rule, readings taken off the wrist do not count."""
    return [(s.t_s, s.values[metric]) for s in samples if metric in s.values and (not health or _worn(s))]


def _minute_means(samples: list[Sample], metric: str) -> dict[int, float]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for t, value in _points(samples, metric, health=True):
        buckets[t // 60].append(value)
    return {minute: sum(values) / len(values) for minute, values in buckets.items()}


Condition = tuple[str, Callable[[float], bool], int]  # severity, holds, minutes or seconds


def _sustained(means: dict[int, float], raises: list[Condition], clear: Callable[[float], bool], clear_n: int,
               guard: Callable[[range], bool] = lambda window: True) -> list[tuple[str, int]]:
    """Raise when a condition holds in N consecutive minutes (a minute without readings breaks the run)."""
    events, is_open = [], False
    for m in range(min(means, default=0), max(means, default=-1) + 1):
        if not is_open:
            for severity, holds, n in raises:
                window = range(m - n + 1, m + 1)
                if all(k in means and holds(means[k]) for k in window) and guard(window):
                    events.append((severity, (m + 1) * 60))
                    is_open = True
                    break
        elif all(k in means and clear(means[k]) for k in range(m - clear_n + 1, m + 1)):
            is_open = False
    return events


def _spanned(points: list[tuple[int, float]], raises: list[Condition], clear: Callable[[float], bool],
             clear_s: int) -> list[tuple[str, int]]:
    """Raise when readings meeting a condition span its duration; clear after clearing readings span clear_s."""
    events, is_open = [], False
    run_start: dict[int, int | None] = dict.fromkeys(range(len(raises)))
    clear_start = None
    for t, value in points:
        for i, (_, holds, _) in enumerate(raises):
            run_start[i] = (t if run_start[i] is None else run_start[i]) if holds(value) else None
        if not is_open:
            met = [(sev, t) for i, (sev, _, span_s) in enumerate(raises)
                   if run_start[i] is not None and t - run_start[i] >= span_s]
            if met:
                events.append(met[0])
                is_open, clear_start = True, None
        elif clear(value):
            clear_start = t if clear_start is None else clear_start
            if t - clear_start >= clear_s:
                is_open = False
        else:
            clear_start = None
    return events


def _arcing(points: list[tuple[int, float]]) -> list[tuple[str, int]]:
    for t, _ in points:
        if sum(v for u, v in points if t - 600 <= u <= t) >= 3:
            return [("high", t)]  # clears only after 24 h without arcing: never within a scenario
    return []


def _battery(points: list[tuple[int, float]]) -> list[tuple[str, int]]:
    events, is_open = [], False
    for t, value in points:
        if not is_open and value <= 10:
            events.append(("low", t))
            is_open = True
        elif is_open and value >= 20:
            is_open = False
    return events


def _fall(samples: list[Sample]) -> list[tuple[str, int]]:
    steps = _points(samples, "steps", health=True)
    last = max(s.t_s for s in samples)
    for t, flag in _points(samples, "fall", health=True):
        if flag == 1 and last >= t + 60 and not any(t < u <= t + 60 and v > 0 for u, v in steps):
            return [("critical", t + 60)]  # resolved by a person: never within a scenario
    return []


def oracle(scenario: Scenario, samples: list[Sample]) -> list[Event]:
    """Every alert docs/rules.md raises over these samples, in event time."""
    def worn_steps(window: range) -> float:
        return sum(v for t, v in _points(samples, "steps", health=True) if t // 60 in window)

    hr = _minute_means(samples, "heart_rate")
    spo2 = _minute_means(samples, "spo2")
    temperature = _points(samples, "temperature")
    found: dict[str, list[tuple[str, int]]] = {
        "tachycardia": _sustained(hr, [("high", lambda v: v > 120, 10)], lambda v: v <= 110, 5,
                                  guard=lambda window: worn_steps(window) < 100),
        "bradycardia": _sustained(hr, [("high", lambda v: v < 40, 10)], lambda v: v >= 45, 5),
        "low_spo2": _sustained(spo2, [("critical", lambda v: v < 85, 2), ("high", lambda v: v < 90, 5)],
                               lambda v: v >= 92, 5),
        "fall": _fall(samples),
        "low_battery": _battery(_points(samples, "battery")),
        "smoke": _spanned(_points(samples, "smoke"), [("critical", lambda v: v == 1, 30)], lambda v: v == 0, 300),
        "co": _spanned(_points(samples, "co_ppm"), [("critical", lambda v: v >= 400, 240),
                                                    ("critical", lambda v: v >= 150, 600),
                                                    ("critical", lambda v: v >= 70, 3600)], lambda v: v < 30, 600),
        "gas_leak": _spanned(_points(samples, "gas_lel"), [("critical", lambda v: v >= 10, 30)], lambda v: v < 5, 300),
        "water_leak": _spanned(_points(samples, "water_leak"), [("high", lambda v: v == 1, 60)], lambda v: v == 0,
                               300),
        "freeze_risk": _spanned(temperature, [("high", lambda v: v <= -6.7, 1800), ("medium", lambda v: v <= 5, 1800)],
                                lambda v: v >= 8, 1800),
        "overheat": _spanned(temperature, [("critical", lambda v: v >= 57, 30)], lambda v: v < 45, 300),
        "electrical_arcing": _arcing(_points(samples, "arc_events")),
    }
    return sorted((kind, severity, at) for kind, events in found.items() for severity, at in events)


# -- the labels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("scenario", REPLAY, ids=lambda s: s.name)
def test_readings_raise_exactly_the_labelled_alerts(scenario: Scenario, seed: int):
    found = oracle(scenario, scenario.samples(seed))
    expected = sorted(scenario.expected, key=lambda e: (e.type, e.at_s))
    assert [(k, sev) for k, sev, _ in found] == [(e.type, e.severity) for e in expected], found
    for (_, _, at), label in zip(found, expected, strict=True):
        assert label.accepts(at), f"{label.type} met at {at} s, labelled {label.at_s} s"
        assert at == label.at_s, "labels give the exact moment; the tolerance is for the pipeline"


@pytest.mark.parametrize("scenario", REPLAY, ids=lambda s: s.name)
def test_the_completing_reading_lies_in_the_labelled_window(scenario: Scenario):
    times = scenario.times()
    for label in scenario.expected:
        inside = [t for t in times if label.first_s <= t <= label.last_s]
        assert inside, f"no reading between {label.first_s} and {label.last_s}"
        assert label.at_s - label.early_s <= max(inside) <= label.at_s


def test_samples_are_deterministic_and_the_seed_only_moves_the_noise():
    scenario = BY_NAME["tachycardia_at_rest"]
    assert scenario.samples(3) == scenario.samples(3)
    assert scenario.samples(3) != scenario.samples(4)


@pytest.mark.parametrize(("name", "metric", "first_minute", "count", "mean"), [
    ("tachycardia_121_for_10min", "heart_rate", 3, 10, 121),
    ("tachycardia_120_for_12min", "heart_rate", 3, 12, 120),
    ("tachycardia_121_for_9min", "heart_rate", 3, 9, 121),
    ("tachycardia_99_steps", "heart_rate", 3, 10, 121),
    ("tachycardia_100_steps", "heart_rate", 3, 10, 121),
    ("bradycardia_39_for_10min", "heart_rate", 3, 10, 39),
    ("bradycardia_40_for_12min", "heart_rate", 3, 12, 40),
    ("bradycardia_39_for_9min", "heart_rate", 3, 9, 39),
    ("low_spo2_89_for_5min", "spo2", 3, 5, 89),
    ("low_spo2_90_for_8min", "spo2", 3, 8, 90),
    ("low_spo2_89_for_4min", "spo2", 3, 4, 89),
    ("low_spo2_84_for_2min", "spo2", 3, 2, 84),
    ("low_spo2_85_for_3min", "spo2", 3, 3, 85),
    ("low_spo2_84_for_1min", "spo2", 3, 1, 84),
])
def test_minute_boundaries_sit_exactly_on_their_mark(name: str, metric: str, first_minute: int, count: int,
                                                     mean: int):
    means = _minute_means(BY_NAME[name].samples(), metric)
    assert [means[m] for m in range(first_minute, first_minute + count)] == [mean] * count
    # The minutes on either side are ordinary: the run is exactly `count` minutes long.
    for outside in (first_minute - 1, first_minute + count):
        assert abs(means[outside] - mean) > 5


@pytest.mark.parametrize(("name", "steps"), [("tachycardia_99_steps", 99), ("tachycardia_100_steps", 100)])
def test_the_activity_guard_boundary_counts_steps_exactly(name: str, steps: int):
    samples = BY_NAME[name].samples()
    assert sum(v for t, v in _points(samples, "steps") if 180 <= t < 780) == steps


@pytest.mark.parametrize(("name", "metric", "holds", "first", "last", "extreme"), [
    ("smoke_30s", "smoke", lambda v: v == 1, 180, 210, 1),
    ("smoke_25s", "smoke", lambda v: v == 1, 180, 205, 1),
    ("toast_10s", "smoke", lambda v: v == 1, 180, 190, 1),
    ("water_leak_60s", "water_leak", lambda v: v == 1, 180, 240, 1),
    ("water_leak_50s", "water_leak", lambda v: v == 1, 180, 230, 1),
    ("gas_10_for_30s", "gas_lel", lambda v: v >= 10, 180, 210, 10),
    ("gas_10_for_25s", "gas_lel", lambda v: v >= 10, 180, 205, 10),
    ("overheat_57_for_30s", "temperature", lambda v: v >= 57, 180, 210, 57),
    ("overheat_57_for_25s", "temperature", lambda v: v >= 57, 180, 205, 57),
    ("co_150_for_10min", "co_ppm", lambda v: v >= 150, 180, 780, 150),
    ("co_150_for_9min", "co_ppm", lambda v: v >= 150, 180, 720, 150),
    ("co_70_for_60min", "co_ppm", lambda v: v >= 70, 180, 3780, 70),
    ("co_70_for_59min", "co_ppm", lambda v: v >= 70, 180, 3720, 70),
    ("co_400_for_4min", "co_ppm", lambda v: v >= 400, 180, 420, 400),
    ("co_400_for_3min", "co_ppm", lambda v: v >= 400, 180, 360, 400),
    ("freeze_5_for_30min", "temperature", lambda v: v <= 5, 180, 1980, 5),
    ("freeze_5_for_29min", "temperature", lambda v: v <= 5, 180, 1920, 5),
    ("freeze_minus_6_7_for_30min", "temperature", lambda v: v <= -6.7, 180, 1980, -6.7),
])
def test_span_boundaries_span_exactly_their_duration_at_their_mark(name, metric, holds, first, last, extreme):
    points = _points(BY_NAME[name].samples(), metric)
    meeting = [(t, v) for t, v in points if holds(v)]
    assert (meeting[0][0], meeting[-1][0]) == (first, last)
    assert [t for t, _ in meeting] == [t for t, _ in points if first <= t <= last], "one unbroken run"
    assert extreme in [v for _, v in meeting], "the mark itself is among the readings"


@pytest.mark.parametrize(("name", "metric", "mark", "below"), [
    ("gas_9_9_for_10min", "gas_lel", 9.9, True),
    ("overheat_56_9_for_10min", "temperature", 56.9, True),
    ("co_149_9_for_15min", "co_ppm", 149.9, True),
    ("co_69_9_for_90min", "co_ppm", 69.9, True),
    ("co_30_for_4h", "co_ppm", 30, True),
    ("freeze_5_1_for_45min", "temperature", 5.1, False),
    ("freeze_minus_6_6_for_30min", "temperature", -6.6, False),
])
def test_threshold_misses_stop_one_device_step_short(name: str, metric: str, mark: float, below: bool):
    values = [v for t, v in _points(BY_NAME[name].samples(), metric) if t >= 180]
    extreme = max(values) if below else min(values)
    assert extreme == mark


def test_co_for_hours_stays_at_or_under_30_ppm_for_four_hours():
    points = _points(BY_NAME["co_30_for_4h"].samples(), "co_ppm")
    assert max(v for _, v in points) <= 30
    assert max(t for t, v in points if v >= 20) - min(t for t, v in points if v >= 20) >= 4 * 3600


def test_exercise_has_a_high_heart_rate_and_many_steps():
    samples = BY_NAME["exercise_run"].samples()
    means = _minute_means(samples, "heart_rate")
    assert sum(1 for v in means.values() if v > 120) >= 20
    steps = _points(samples, "steps")
    assert sum(v for t, v in steps if 360 <= t < 960) > 1000  # ten running minutes


def test_watch_off_readings_would_alarm_if_they_counted():
    samples = BY_NAME["watch_off_garbage_readings"].samples()
    assert all(s.values["worn"] == 0 for s in samples if 180 <= s.t_s < 1380)
    unfiltered = [s for s in samples if 180 <= s.t_s < 1380]
    assert min(s.values["heart_rate"] for s in unfiltered) > 120
    assert max(s.values["spo2"] for s in unfiltered) < 90


def test_shower_is_humid_and_warm():
    samples = [s for s in BY_NAME["shower"].samples() if 180 <= s.t_s <= 1080]
    assert min(s.values["humidity"] for s in samples) >= 90
    assert 28 <= min(s.values["temperature"] for s in samples) <= max(s.values["temperature"] for s in samples) <= 32


# -- messages and delivery --------------------------------------------------------------------------


def _plan(scenario: Scenario):
    start = scenario.start_for(NOW)
    messages = plan_messages(scenario, device_id=f"ev-test-{scenario.name}", start=start, sent_at=NOW)
    return start, messages, delivery_order(scenario, messages)


@pytest.mark.parametrize("scenario", LIBRARY, ids=lambda s: s.name)
def test_every_message_passes_ingest_whole(scenario: Scenario):
    start, messages, order = _plan(scenario)
    # A live scenario's message is published when its last sample is due; a replay is published now.
    for message in messages:
        sent = start + timedelta(seconds=message.offsets[-1]) if scenario.live else NOW
        payload = message.encode()
        assert len(payload) <= MAX_PAYLOAD_BYTES
        assert len(message.payload["readings"]) <= MAX_READINGS
        verdict = judge(f"devices/ev-test-{scenario.name}/telemetry", payload, now_ms=to_ms(sent),
                        retention_ms=30 * 86_400_000, lookup=lambda did: RegisteredDevice(did, "m-1", True))
        assert verdict.dead_letters == [] and verdict.record is not None
    assert sorted(set(order)) == list(range(len(messages))), "every message is delivered"
    offsets = [t for m in messages for t in m.offsets]
    assert offsets == scenario.times(), "every sample is in exactly one message"


@pytest.mark.parametrize("scenario", REPLAY, ids=lambda s: s.name)
def test_replays_end_in_the_past_on_a_whole_minute(scenario: Scenario):
    start = scenario.start_for(NOW)
    assert start.second == 0 and start.microsecond == 0
    assert start + timedelta(seconds=scenario.duration_s) <= NOW - timedelta(seconds=60)
    # Whole minutes have an even number of samples, so the balanced noise cancels in each.
    assert 60 % scenario.sample_s == 0 and (60 // scenario.sample_s) % 2 == 0
    assert len(f"ev-abcdef-{scenario.name}") <= 64


def test_out_of_order_deliveries_are_late_by_less_than_two_minutes():
    for scenario in [s for s in LIBRARY if isinstance(s.delivery, ReversedBlocks)]:
        _, messages, order = _plan(scenario)
        newest, late = -1, []
        for index in order:
            first = messages[index].first_s
            if first < newest:
                late.append(newest - first)
            newest = max(newest, messages[index].offsets[-1])
        assert late, f"{scenario.name} is delivered in order"
        assert max(late) < 120


def test_out_of_order_fall_delivers_the_getting_up_before_the_fall():
    _, messages, order = _plan(BY_NAME["fall_got_up_out_of_order"])
    fall_at = order.index(next(i for i, m in enumerate(messages) if 205 in m.offsets))
    walking_at = order.index(next(i for i, m in enumerate(messages) if 215 in m.offsets))
    assert walking_at < fall_at


def test_a_redelivered_message_would_double_the_arcing_count():
    _, messages, order = _plan(BY_NAME["arcing_redelivered"])
    counted = sum(r["value"] for i in order for r in messages[i].payload["readings"] if r["metric"] == "arc_events")
    assert counted == 4  # twice the 2 real events: the rule must count each (device, seq) once
    assert len(order) == len(messages) + 1


def test_late_sync_uploads_three_hours_at_once_with_an_episode_three_hours_ago():
    scenario = BY_NAME["tachycardia_late_sync"]
    start, messages, _ = _plan(scenario)
    (label,) = scenario.expected
    assert NOW - (start + timedelta(seconds=label.at_s)) >= timedelta(hours=2, minutes=59)
    assert NOW - start >= timedelta(hours=3, minutes=15)
    assert len(messages) >= 9
    assert all(len(m.payload["readings"]) > 500 for m in messages[:-1])


def test_live_offline_scenarios_keep_or_break_the_silence_limit():
    silent, jitter = BY_NAME["offline_goes_silent"], BY_NAME["offline_heartbeat_jitter"]
    limit = 3 * silent.report_interval_s
    (label,) = silent.expected
    assert label.at_s == silent.times()[-1] + limit
    assert silent.observe_s >= label.at_s + label.late_s
    gaps = [b - a for a, b in zip(jitter.times(), jitter.times()[1:], strict=False)]
    assert max(gaps) < limit and jitter.observe_s - jitter.times()[-1] < limit
    assert max(gaps) >= 12, "the jitter comes close to the limit"


# -- coverage ---------------------------------------------------------------------------------------


def test_alert_types_are_the_contracts():
    assert set(ALERT_TYPES) == set(typing.get_args(AlertType))


@pytest.mark.parametrize("alert_type", ALERT_TYPES)
def test_every_rule_has_a_positive_and_a_negative_boundary(alert_type: str):
    raising = [s for s in LIBRARY if s.role in ("positive", "inside") and alert_type in {e.type for e in s.expected}]
    quiet_boundary = [s for s in LIBRARY if s.role == "outside" and alert_type in s.absent]
    assert raising and quiet_boundary


@pytest.mark.parametrize("alert_type", [t for t in ALERT_TYPES if t != "device_offline"])
def test_every_rule_meets_a_confounder(alert_type: str):
    assert [s for s in LIBRARY if s.role == "confounder" and alert_type in s.absent]


@pytest.mark.parametrize("confounder", ["exercise_run", "shower", "toast_10s", "co_30_for_4h",
                                        "watch_off_garbage_readings", "fall_got_up", "late_sync_quiet"])
def test_the_issues_confounders_are_all_there(confounder: str):
    assert BY_NAME[confounder].role == "confounder"
    assert not BY_NAME[confounder].expected


def test_labels_are_consistent():
    assert len(BY_NAME) == len(LIBRARY), "names are unique"
    for s in LIBRARY:
        assert s.role in ROLES
        assert set(s.absent) <= set(ALERT_TYPES)
        assert not {e.type for e in s.expected} & set(s.absent), s.name
        assert s.expected or s.absent, f"{s.name} says nothing"
        if s.role in ("inside", "positive"):
            assert s.expected, s.name


def test_select_by_rule_and_by_name():
    assert {s.name for s in select(names=["co_*"])} == {s.name for s in LIBRARY if s.name.startswith("co_")}
    assert all("fall" in s.rules for s in select(rules=["fall"]))
    assert [s.name for s in select(rules=["co"], names=["co_400_*"])] == ["co_400_for_4min", "co_400_for_3min"]
    with pytest.raises(ValueError, match="unknown rule"):
        select(rules=["heartburn"])
    with pytest.raises(ValueError, match="no scenario matches"):
        select(names=["nothing_like_this"])

