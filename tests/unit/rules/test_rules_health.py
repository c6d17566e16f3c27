"""Health rules at their boundaries: bradycardia, low_spo2 (two tiers) and fall, on a fixed clock.

Tachycardia's boundaries are in test_rules.py.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.unit.rules.story import at, every, judge, minutely, steady, story, tick
from vigil.events import AlertChanged
from vigil.rules.state import DeviceState

# -- bradycardia ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(steady("heart_rate", 39, minutes=10) + tick(10), [at(10)], id="10 minutes at 39 raise"),
        pytest.param(steady("heart_rate", 39, minutes=9) + tick(9), [], id="9 minutes do not"),
        pytest.param(steady("heart_rate", 40, minutes=10) + tick(10), [], id="40 is not below 40"),
        pytest.param(minutely("heart_rate", *[[35, 45]] * 10) + tick(10), [], id="readings averaging 40"),
        pytest.param(minutely("heart_rate", *[[30, 48]] * 10) + tick(10), [at(10)], id="readings averaging 39"),
        pytest.param(steady("heart_rate", 39, minutes=10), [], id="the 10th minute waits for a later reading"),
        pytest.param(minutely("heart_rate", *[39] * 4, None, *[39] * 9) + tick(14), [],
                     id="a minute with no reading breaks the run"),
        pytest.param(steady("heart_rate", 39, minutes=10) + steady("worn", 0, minutes=10, second=1) + tick(10), [],
                     id="off the body"),
        pytest.param(steady("heart_rate", 39, minutes=10) + steady("worn", 1, minutes=10, second=1) + tick(10),
                     [at(10)], id="on the body"),
    ],
)
def test_bradycardia_needs_ten_minutes_below_40_worn(readings, expected):
    alerts = judge(readings, "bradycardia").alerts

    assert story(alerts) == [("raised", "bradycardia", "high", moment) for moment in expected]


SLOW = steady("heart_rate", 36, minutes=10)  # raised at minute 10


@pytest.mark.parametrize(
    ("after", "cleared"),
    [
        pytest.param(steady("heart_rate", 45, minutes=5, start=10) + tick(15), [at(15)], id="5 minutes at 45 clear"),
        pytest.param(steady("heart_rate", 44, minutes=5, start=10) + tick(15), [], id="44 is not enough"),
        pytest.param(steady("heart_rate", 50, minutes=4, start=10) + tick(14), [], id="4 minutes are not enough"),
    ],
)
def test_bradycardia_clears_after_five_minutes_at_45_or_more(after, cleared):
    alerts = judge(SLOW + after, "bradycardia").alerts

    assert story(alerts) == [("raised", "bradycardia", "high", at(10))] + [
        ("cleared", "bradycardia", "high", moment) for moment in cleared]


# -- low_spo2: two tiers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(steady("spo2", 89, minutes=5) + tick(5), [("high", at(5))], id="5 minutes at 89: high"),
        pytest.param(steady("spo2", 89, minutes=4) + tick(4), [], id="4 minutes at 89 do not"),
        pytest.param(steady("spo2", 90, minutes=5) + tick(5), [], id="90 is not below 90"),
        pytest.param(steady("spo2", 84, minutes=2) + tick(2), [("critical", at(2))], id="2 minutes at 84: critical"),
        pytest.param(steady("spo2", 84, minutes=1) + tick(1), [], id="1 minute at 84 does not"),
        pytest.param(steady("spo2", 85, minutes=2) + tick(2), [], id="85 is not below 85"),
        pytest.param(steady("spo2", 85, minutes=5) + tick(5), [("high", at(5))], id="5 minutes at 85: high"),
        pytest.param(minutely("spo2", 84, 88, 84) + tick(3), [], id="the critical run needs consecutive minutes"),
        pytest.param(steady("spo2", 80, minutes=5) + steady("worn", 0, minutes=5, second=1) + tick(5), [],
                     id="off the body"),
    ],
)
def test_low_spo2_is_high_after_5_minutes_below_90_and_critical_after_2_below_85(readings, expected):
    alerts = judge(readings, "low_spo2").alerts

    assert [(a.severity, a.triggered_at_ms) for a in alerts if a.change == "raised"] == expected


def test_a_persisting_low_spo2_that_reaches_the_critical_tier_updates_the_open_alert():
    alerts = judge(steady("spo2", 88, minutes=5) + steady("spo2", 84, minutes=4, start=5) + tick(9), "low_spo2").alerts

    assert story(alerts, updates=True) == [
        ("raised", "low_spo2", "high", at(5)),
        ("updated", "low_spo2", "critical", at(5)),
    ]
    raised, updated = alerts
    assert updated.alert_id == raised.alert_id
    assert updated.evidence["tier"] == 1
    assert [m["mean"] for m in updated.evidence["minutes"]] == [84.0, 84.0]
    # The evidence says when the critical tier was reached: the end of minute 6.
    assert updated.evidence["minutes"][-1]["minute"] == "2026-11-22T02:06:00Z"


@pytest.mark.parametrize(
    ("after", "cleared"),
    [
        pytest.param(steady("spo2", 92, minutes=5, start=5) + tick(10), [at(10)], id="5 minutes at 92 clear"),
        pytest.param(steady("spo2", 91, minutes=5, start=5) + tick(10), [], id="91 is not enough"),
        pytest.param(steady("spo2", 96, minutes=4, start=5) + tick(9), [], id="4 minutes are not enough"),
    ],
)
def test_low_spo2_clears_after_five_minutes_at_92_or_more(after, cleared):
    alerts = judge(steady("spo2", 88, minutes=5) + after, "low_spo2").alerts

    assert [(a.change, a.cleared_at_ms) for a in alerts if a.change == "cleared"] == [("cleared", c) for c in cleared]


# -- fall -----------------------------------------------------------------------------------------

FALL_S = 100
QUIET_END_S = FALL_S + 60


def wearable(to_s: float, *, from_s: float = 0, steps: float = 0) -> list:
    """A watch on a member lying still: heart rate and step count every 10 s."""
    return every("heart_rate", 80, from_s=from_s, to_s=to_s) + every("steps", steps, from_s=from_s, to_s=to_s)


def fell(second: float = FALL_S) -> list:
    return [(at(0, second), "fall", 1.0)]


def sent(metric: str, value: float, second: float) -> list:
    return [(at(0, second), metric, float(value))]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(wearable(300) + fell(), [at(0, QUIET_END_S)], id="no steps for 60 s: raised at fall + 60 s"),
        pytest.param(wearable(150) + fell(), [], id="judged only once readings reach fall + 60 s"),
        pytest.param(wearable(300) + fell() + sent("steps", 12, 130), [], id="steps 30 s later: got up"),
        pytest.param(wearable(300) + fell() + sent("steps", 1, QUIET_END_S), [],
                     id="steps at the 60th second still count"),
        pytest.param(wearable(300) + fell() + sent("steps", 12, QUIET_END_S + 1), [at(0, QUIET_END_S)],
                     id="steps after the quiet time are too late"),
        pytest.param(wearable(300) + fell() + sent("steps", 30, FALL_S), [at(0, QUIET_END_S)],
                     id="steps sent with the fall were taken before it"),
        pytest.param(wearable(300) + every("fall", 0, from_s=0, to_s=300), [], id="no fall flag"),
        pytest.param(wearable(300) + fell() + sent("worn", 0, 90), [], id="a watch off the body fell: ignored"),
        pytest.param(wearable(300) + fell() + sent("worn", 0, FALL_S), [], id="off-body flag sent with the fall"),
        pytest.param(wearable(300) + fell() + sent("worn", 1, 90), [at(0, QUIET_END_S)], id="worn"),
        pytest.param(wearable(300) + fell() + sent("worn", 0, 120), [at(0, QUIET_END_S)],
                     id="torn off in the fall: still a fall"),
        pytest.param(wearable(300) + fell() + fell(130), [at(0, QUIET_END_S)], id="a second flag while down"),
    ],
)
def test_a_fall_raises_when_the_member_does_not_get_up_within_60_seconds(readings, expected):
    alerts = judge(readings, "fall").alerts

    assert story(alerts) == [("raised", "fall", "critical", moment) for moment in expected]


def test_a_fall_alert_says_what_made_it_and_is_never_cleared_by_a_rule():
    judgement = judge(wearable(300) + fell() + wearable(2 * 3600, from_s=310, steps=20), "fall")

    [raised] = judgement.alerts
    assert (raised.change, raised.severity, raised.opens_incident) == ("raised", "critical", True)
    assert raised.triggered_at_ms == at(0, QUIET_END_S)
    assert raised.evidence["fall_at"] == "2026-11-22T02:01:40Z"
    assert raised.evidence["quiet_s"] == 60
    assert raised.evidence["activity_within_quiet"] == 0


def test_the_fall_judgement_waits_for_readings_past_the_quiet_time():
    state = DeviceState()
    first = judge(wearable(150) + fell(), "fall", state=state).alerts
    second = judge(wearable(170, from_s=160), "fall", state=state).alerts

    assert first == []
    assert story(second) == [("raised", "fall", "critical", at(0, QUIET_END_S))]


@pytest.mark.parametrize(
    ("second_fall_min", "expected"),
    [
        pytest.param(20, [("raised", at(0, QUIET_END_S)), ("updated", at(20, QUIET_END_S))],
                     id="a fall 20 minutes later updates the alert"),
        pytest.param(35, [("raised", at(0, QUIET_END_S)), ("raised", at(35, QUIET_END_S))],
                     id="35 minutes later it is a new alert"),
    ],
)
def test_falls_regroup_for_30_minutes(second_fall_min, expected):
    readings = wearable(3600) + fell() + fell(second_fall_min * 60 + FALL_S)

    alerts = judge(readings, "fall").alerts

    assert [(a.change, moment_of(a)) for a in alerts] == expected
    assert len({a.alert_id for a in alerts}) == len([e for e in expected if e[0] == "raised"])


def moment_of(alert: AlertChanged) -> int:
    """For a fall: the raise's trigger, or the moment the later fall's quiet time ended."""
    if alert.change == "raised":
        return alert.triggered_at_ms
    fall = datetime.fromisoformat(alert.evidence["fall_at"].replace("Z", "+00:00"))
    return int(fall.timestamp() * 1000) + 60_000


def test_a_fall_after_the_regroup_time_is_a_new_alert_even_when_it_is_the_first_reading_since():
    later_s = 35 * 60 + FALL_S
    readings = wearable(300) + fell() + wearable(later_s + 300, from_s=later_s) + fell(later_s)

    alerts = judge(readings, "fall").alerts

    assert story(alerts) == [("raised", "fall", "critical", at(0, QUIET_END_S)),
                             ("raised", "fall", "critical", at(0, later_s + 60))]
