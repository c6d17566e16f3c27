"""Event time and lateness: batches split anywhere and shuffled, stragglers within the allowance, late
syncs of hours of data, readings too late to judge, redeliveries, and how small the state stays.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.unit.rules.busy_device import IN_ORDER, IN_ORDER_STATE, INSTANTS, SCENARIO, deliver, straggling
from tests.unit.rules.story import NOW_MS, at, every, judge, steady, story, tick
from vigil.events import AlertChanged
from vigil.rules.lateness import DEFAULT_ALLOWED_LATENESS_MS, MAX_BUFFERED_READINGS, Judgement
from vigil.rules.state import DeviceState


def per_alert(judgement: Judgement) -> dict[str, list[AlertChanged]]:
    """Each alert's events in the order sent. Events of different alerts (or devices) are independent, so
    their relative order, which depends on how readings were batched, does not matter.
    """
    events: dict[str, list[AlertChanged]] = {}
    for alert in judgement.alerts:
        events.setdefault(alert.alert_id, []).append(alert)
    return events


def same_story(judgement: Judgement, expected: Judgement) -> bool:
    return (per_alert(judgement) == per_alert(expected) and len(judgement.alerts) == len(expected.alerts)
            and sorted(judgement.incidents, key=lambda i: i.incident_id)
            == sorted(expected.incidents, key=lambda i: i.incident_id)
            and judgement.too_late == expected.too_late)


def test_the_scenario_tells_every_story():
    opened = {a.type for a in IN_ORDER.alerts if a.change == "raised"}
    assert opened == {"tachycardia", "low_spo2", "bradycardia", "fall", "water_leak", "smoke", "overheat", "co",
                      "gas_leak", "electrical_arcing", "low_battery"}
    assert [a.triggered_at_ms for a in IN_ORDER.alerts if a.type == "fall"] == [at(81, 5)]
    assert ("updated", "critical") in [(a.change, a.severity) for a in IN_ORDER.alerts if a.type == "low_spo2"]
    assert sorted(i.kind for i in IN_ORDER.incidents) == ["accident", "fire", "water_damage"]
    assert IN_ORDER.too_late == 0


def test_one_reading_per_call_in_order_is_judged_the_same():
    judgement, state = deliver([[r] for r in SCENARIO])

    assert same_story(judgement, IN_ORDER)
    assert state.to_dict() == IN_ORDER_STATE.to_dict()


def test_one_shuffled_batch_is_judged_as_if_in_order():
    shuffled = SCENARIO.copy()
    random.Random(1).shuffle(shuffled)

    judgement, state = deliver([shuffled])

    assert same_story(judgement, IN_ORDER)
    assert state.to_dict() == IN_ORDER_STATE.to_dict()


@pytest.mark.parametrize("seed", range(12))
def test_batches_split_anywhere_and_shuffled_inside_give_the_same_alerts(seed):
    # A device sends every metric of an instant in one message, so a cut falls between instants.
    rng = random.Random(seed)
    cuts = sorted(rng.sample(INSTANTS[1:], rng.randrange(1, 300)))
    batches, start = [], 0
    for cut in [*cuts, None]:
        end = next(i for i, r in enumerate(SCENARIO) if r[0] >= cut) if cut is not None else len(SCENARIO)
        batch = SCENARIO[start:end]
        rng.shuffle(batch)
        batches.append(batch)
        start = end

    judgement, state = deliver(batches)

    assert same_story(judgement, IN_ORDER)
    assert state.to_dict() == IN_ORDER_STATE.to_dict()


def stored(judgement: Judgement) -> dict[str, list[tuple]]:
    """What the alerts service ends up holding, per type: (triggered_at, cleared_at, severity) of every
    alert, in order, leaving out alerts cleared as withdrawn (an overturned early verdict). As in
    `alerts.store`, an update moves an alert's triggered_at back, never forward.
    """
    alerts: dict[str, dict] = {}
    for event in judgement.alerts:
        alert = alerts.setdefault(event.alert_id, {"type": event.type, "triggered": event.triggered_at_ms})
        alert["triggered"] = min(alert["triggered"], event.triggered_at_ms)
        alert["severity"] = event.severity
        if event.change == "cleared":
            alert["cleared"] = event.cleared_at_ms
            alert["withdrawn"] = "withdrawn" in event.evidence
    held: dict[str, list[tuple]] = {}
    for alert in alerts.values():
        if not alert.get("withdrawn"):
            held.setdefault(alert["type"], []).append((alert["triggered"], alert.get("cleared"), alert["severity"]))
    return {kind: sorted(values) for kind, values in held.items()}


def close(moment: int | None, expected: int | None) -> bool:
    """Within the allowance: a straggler can move a verdict by at most that much."""
    if moment is None or expected is None:
        return moment == expected
    return abs(moment - expected) <= DEFAULT_ALLOWED_LATENESS_MS


@pytest.mark.parametrize("seed", range(12))
def test_stragglers_within_the_allowance_leave_the_alerts_of_in_order_delivery(seed):
    judgement, state = deliver(straggling(seed, max_delay_s=90))

    assert judgement.too_late == 0
    # The rules end in exactly the state in-order delivery leaves them in.
    assert state.checkpoint == IN_ORDER_STATE.checkpoint
    assert state.buffer == IN_ORDER_STATE.buffer
    # The alerts service holds the same alerts, open or cleared, with the same severities. A verdict
    # sent before a straggler arrived may have named the episode's start or end a little differently
    # (the alert already sent then stands for the episode as the readings show it), never as a second
    # alert: its triggered_at is corrected to the moment the condition was met, in-order delivery's,
    # and its end is off by no more than the allowance.
    held, expected = stored(judgement), stored(IN_ORDER)
    assert held.keys() == expected.keys()
    for kind, alerts in held.items():
        assert len(alerts) == len(expected[kind]), kind
        for (triggered, cleared, severity), (want_triggered, want_cleared, want_severity) in zip(
                alerts, expected[kind], strict=True):
            assert triggered == want_triggered and close(cleared, want_cleared), kind
            assert severity == want_severity, kind
    # Open now: the same types, severities and episodes (told holds [alert id, severity, triggered, episode]).
    assert {kind: (known[1], known[3]) for kind, known in state.told.items()} == {
        kind: (known[1], known[3]) for kind, known in IN_ORDER_STATE.told.items()}
    # Incidents: one per episode, on an alert the service knows.
    assert sorted(i.kind for i in judgement.incidents) == sorted(i.kind for i in IN_ORDER.incidents)
    assert {i.alert_id for i in judgement.incidents} <= {a.alert_id for a in judgement.alerts}


@pytest.mark.parametrize("seed", range(8))
def test_heavy_disorder_never_leaves_two_alerts_open_or_an_event_for_an_alert_not_open(seed):
    # Messages up to 15 minutes late: many readings are too late to judge, verdicts are overturned.
    judgement, state = deliver(straggling(seed, max_delay_s=900))

    assert judgement.too_late > 0
    open_now: dict[str, str] = {}
    for event in judgement.alerts:
        if event.change == "raised":
            assert event.type not in open_now, event
            open_now[event.type] = event.alert_id
        else:
            assert open_now.get(event.type) == event.alert_id, event
            if event.change == "cleared":
                del open_now[event.type]
    assert open_now == {kind: known[0] for kind, known in state.told.items()}


def test_a_straggler_that_overturns_a_raised_alert_clears_it_with_the_reason():
    state = DeviceState()
    wet = every("water_leak", 1, from_s=0, to_s=60)

    raised = judge([r for r in wet if r[0] != at(0, 30)], "water_leak", state=state).alerts
    overturned = judge([(at(0, 30), "water_leak", 0.0)], "water_leak", state=state).alerts
    again = judge(every("water_leak", 1, from_s=70, to_s=100), "water_leak", state=state).alerts

    assert story(raised) == [("raised", "water_leak", "high", at(0, 60))]
    assert [(a.change, a.alert_id) for a in overturned] == [("cleared", raised[0].alert_id)]
    assert overturned[0].evidence["withdrawn"].startswith("withdrawn: readings that arrived late")
    assert story(again) == [("raised", "water_leak", "high", at(0, 100))]


def test_a_straggler_that_moves_an_episode_s_start_keeps_the_alert_and_corrects_its_triggered_at():
    state = DeviceState()

    first = judge(every("water_leak", 1, from_s=10, to_s=80), "water_leak", state=state).alerts
    moved = judge([(at(0, 0), "water_leak", 1.0)], "water_leak", state=state).alerts

    assert story(first) == [("raised", "water_leak", "high", at(0, 70))]
    # The same alert (its id unchanged) now stands for the episode that began at 0 s, whose condition
    # was met at 60 s: the update says so, in its evidence and its triggered_at.
    assert [(a.change, a.alert_id, a.triggered_at_ms) for a in moved] == [
        ("updated", first[0].alert_id, at(0, 60))]
    assert moved[0].evidence["first_at"] == "2026-11-22T02:00:00Z"
    assert state.told["water_leak"][:3] == [first[0].alert_id, "high", at(0, 60)]


def test_a_straggler_that_overturns_a_clear_raises_the_alert_again_under_a_new_id():
    state = DeviceState()
    wet, dry = every("water_leak", 1, from_s=0, to_s=60), every("water_leak", 0, from_s=70, to_s=370)

    sent = judge(wet + [r for r in dry if r[0] != at(0, 300)], "water_leak", state=state).alerts
    overturned = judge([(at(0, 300), "water_leak", 1.0)], "water_leak", state=state).alerts

    assert story(sent) == [("raised", "water_leak", "high", at(0, 60)), ("cleared", "water_leak", "high", at(0, 370))]
    [reopened] = overturned
    assert (reopened.change, reopened.triggered_at_ms) == ("raised", at(0, 60))
    assert reopened.alert_id != sent[0].alert_id
    assert reopened.evidence["restated"].startswith("reopened")


# -- latency --------------------------------------------------------------------------------------


def test_a_leak_is_raised_by_the_call_that_brings_its_60th_second():
    state = DeviceState()

    before = judge(every("water_leak", 1, from_s=0, to_s=50), "water_leak", state=state).alerts
    completing = judge([(at(0, 60), "water_leak", 1.0)], "water_leak", state=state).alerts

    assert before == []
    assert story(completing) == [("raised", "water_leak", "high", at(0, 60))]


def test_tachycardia_is_raised_by_the_call_that_brings_the_first_reading_after_its_10th_minute():
    state = DeviceState()

    before = judge(steady("heart_rate", 130, minutes=10), "tachycardia", state=state).alerts
    completing = judge(tick(10), "tachycardia", state=state).alerts

    assert before == []
    assert story(completing) == [("raised", "tachycardia", "high", at(10))]


# -- late syncs and readings too late ---------------------------------------------------------------

HOURS_3 = 180


def _three_hours() -> list:
    """Minutes 1 to 180 of a watch, with tachycardia from minute 101 to 115."""
    rates = [80] * 100 + [135] * 15 + [80] * 65
    return [r for m, rate in enumerate(rates) for r in steady("heart_rate", rate, minutes=1, start=1 + m)]


def test_a_watch_syncing_three_hours_at_once_raises_with_the_moment_the_condition_was_met():
    state = DeviceState()
    judge(tick(0), state=state)  # the watch was heard from, then went offline for three hours

    judgement = judge(_three_hours(), state=state)

    assert story(judgement.alerts) == [("raised", "tachycardia", "high", at(111)),
                                       ("cleared", "tachycardia", "high", at(121))]
    assert {a.detected_at_ms for a in judgement.alerts} == {NOW_MS}
    assert judgement.too_late == 0


def test_a_sync_in_messages_of_1000_readings_is_judged_like_one_batch():
    readings = _three_hours() + every("steps", 0, from_s=60, to_s=HOURS_3 * 60, step_s=2)
    readings.sort()
    messages = [readings[i:i + 1000] for i in range(0, len(readings), 1000)]

    at_once, _ = deliver([readings])
    in_messages, _ = deliver(messages)

    assert same_story(in_messages, at_once)
    assert story(at_once.alerts) == [("raised", "tachycardia", "high", at(111)),
                                     ("cleared", "tachycardia", "high", at(121))]


def test_readings_older_than_the_allowance_are_counted_and_not_judged():
    state = DeviceState()
    judge(steady("heart_rate", 80, minutes=30), state=state)  # watermark 29:05, settled from 27:05

    late = judge(steady("heart_rate", 150, minutes=20, start=5), state=state)
    in_time = judge([(at(27, 5), "heart_rate", 81.0), (at(28, 30), "heart_rate", 82.0)], state=state)

    assert (late.alerts, late.too_late) == ([], 20)
    assert (in_time.alerts, in_time.too_late) == ([], 0)
    assert (at(28, 30), "heart_rate", 82.0) in state.buffer


@pytest.mark.parametrize(("lateness_ms", "too_late"), [(0, 1), (1000, 1), (1001, 0), (120_000, 0)])
def test_the_allowance_is_a_parameter(lateness_ms, too_late):
    state = DeviceState()
    judge([(at(1, 1), "battery", 50.0)], state=state, allowed_lateness_ms=lateness_ms)

    judgement = judge([(at(1, 0) - 1, "battery", 50.0)], state=state, allowed_lateness_ms=lateness_ms)

    assert judgement.too_late == too_late


def test_a_redelivered_message_changes_nothing():
    state = DeviceState()
    message = steady("heart_rate", 130, minutes=10) + steady("steps", 5, minutes=10, second=30) + tick(10)
    first = judge(message, state=state)
    saved = state.to_dict()

    again = judge(message[-3:], state=state)  # the part still within the allowance

    assert story(first.alerts) == [("raised", "tachycardia", "high", at(10))]
    assert again == Judgement(alerts=[], incidents=[], too_late=0)
    assert state.to_dict() == saved


# -- the state stays small ----------------------------------------------------------------------------


def _wearable_day() -> list[list]:
    """A day of a watch: a sample of heart rate, spo2, steps and worn every 15 s, 4 samples a message."""
    rng = random.Random(5)
    samples = []
    for s in range(0, 86_400, 15):
        ts = at(0, s)
        samples.append([(ts, "heart_rate", float(rng.randint(60, 100))), (ts, "spo2", 97.0),
                        (ts, "steps", float(rng.choice((0, 0, 0, 12)))), (ts, "worn", 1.0)])
    return [[r for sample in samples[i:i + 4] for r in sample] for i in range(0, len(samples), 4)]


def test_a_day_of_a_watch_leaves_a_small_state():
    judgement, state = deliver(_wearable_day())

    assert judgement.too_late == 0
    assert all(state.watermark_ms - ts <= DEFAULT_ALLOWED_LATENESS_MS for ts, _, _ in state.buffer)
    buckets = state.checkpoint["minutes"]["buckets"]
    assert {metric: len(minutes) <= 12 for metric, minutes in buckets.items()} == dict.fromkeys(buckets, True)
    assert len(json.dumps(state.to_dict())) < 6_000


def test_a_flood_within_the_allowance_is_capped():
    flood = [(at(0, 0) + i, "battery", 50.0 + i % 7) for i in range(MAX_BUFFERED_READINGS * 2)]

    _, state = deliver([flood[:3000], flood[3000:]])

    assert len(state.buffer) <= MAX_BUFFERED_READINGS


def test_alert_changes_are_plain_events():
    raised = IN_ORDER.alerts[0]
    assert AlertChanged.model_validate_json(raised.model_dump_json()) == raised
