"""Care plans: per-member overrides of the default rules, their validation, and a change mid-episode."""

from __future__ import annotations

import pytest

from tests.unit.rules.story import RULES, at, every, judge, steady, story, tick
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.overrides import describe_overridable, rules_with_overrides, validate_overrides
from vigil.rules.state import DeviceState


def with_plan(plan: dict) -> tuple:
    return rules_with_overrides(DEFAULT_RULES, plan)


# -- applying -------------------------------------------------------------------------------------


def test_no_plan_is_the_defaults():
    assert with_plan({}) == DEFAULT_RULES
    assert with_plan({"fall": {"enabled": True}}) == DEFAULT_RULES


def test_a_switched_off_rule_is_left_out():
    rules = with_plan({"fall": {"enabled": False}, "low_battery": {"enabled": False}})

    assert [r.type for r in rules] == [r.type for r in DEFAULT_RULES if r.type not in ("fall", "low_battery")]


def test_an_override_changes_only_its_field():
    [tachycardia] = [r for r in with_plan({"tachycardia": {"tiers.0.threshold": 130, "clear_minutes": 3}})
                     if r.type == "tachycardia"]

    assert tachycardia.tiers[0].threshold == 130.0
    assert tachycardia.tiers[0].minutes == 10
    assert tachycardia.clear_minutes == 3
    assert RULES["tachycardia"].tiers[0].threshold == 120  # the defaults are untouched


@pytest.mark.parametrize(
    ("plan", "rule", "readings", "expected"),
    [
        pytest.param({}, "tachycardia", steady("heart_rate", 125, minutes=10) + tick(10), [("high", at(10))],
                     id="125 bpm for 10 minutes by default"),
        pytest.param({"tachycardia": {"tiers.0.threshold": 130}}, "tachycardia",
                     steady("heart_rate", 125, minutes=10) + tick(10), [], id="not over a threshold of 130"),
        pytest.param({"tachycardia": {"tiers.0.minutes": 5}}, "tachycardia",
                     steady("heart_rate", 125, minutes=5) + tick(5), [("high", at(5))], id="5 minutes are enough"),
        pytest.param({"tachycardia": {"max_steps": 500}}, "tachycardia",
                     steady("heart_rate", 125, minutes=10) + steady("steps", 40, minutes=10, second=30) + tick(10),
                     [("high", at(10))], id="a more active member"),
        pytest.param({"low_spo2": {"tiers.1.threshold": 80}}, "low_spo2", steady("spo2", 84, minutes=5) + tick(5),
                     [("high", at(5))], id="a lower critical point for a COPD patient"),
        pytest.param({"water_leak": {"span_s": 120}}, "water_leak", every("water_leak", 1, from_s=0, to_s=150),
                     [("high", at(0, 120))], id="a leak must last 2 minutes"),
        pytest.param({"fall": {"quiet_s": 30}}, "fall",
                     every("steps", 0, from_s=0, to_s=200) + every("fall", 1, from_s=100, to_s=100),
                     [("critical", at(0, 130))], id="a shorter wait for getting up"),
        pytest.param({"electrical_arcing": {"threshold": 5}}, "electrical_arcing",
                     every("arc_events", 1, from_s=0, to_s=240, step_s=60), [("high", at(4))], id="5 arcs"),
    ],
)
def test_a_plan_changes_what_raises(plan, rule, readings, expected):
    rules = [r for r in with_plan(plan) if r.type == rule]

    alerts = judge(readings, rules=rules).alerts

    assert [(a.severity, a.triggered_at_ms) for a in alerts if a.change == "raised"] == expected


def test_the_evidence_shows_the_member_s_parameters():
    rules = with_plan({"tachycardia": {"tiers.0.threshold": 100, "clear_threshold": 90}})

    [raised] = judge(steady("heart_rate", 105, minutes=10) + tick(10), rules=rules).alerts

    assert raised.evidence["parameters"]["tiers"][0]["threshold"] == 100
    assert raised.evidence["parameters"]["clear_threshold"] == 90


# -- a plan changed in the middle of an episode ---------------------------------------------------

EPISODE = steady("heart_rate", 130, minutes=15)  # raised at minute 10, settled by minute 15


def test_an_open_alert_stays_open_and_is_judged_by_the_new_parameters():
    state = DeviceState()
    [raised] = judge(EPISODE, "tachycardia", state=state).alerts
    stricter = with_plan({"tachycardia": {"tiers.0.threshold": 140, "clear_threshold": 100}})

    still = judge(steady("heart_rate", 105, minutes=6, start=15), state=state, rules=stricter).alerts
    cleared = judge(steady("heart_rate", 95, minutes=5, start=21) + tick(26), state=state, rules=stricter).alerts

    assert still == []  # 105 would have cleared it under the defaults (at most 110)
    assert story(cleared) == [("cleared", "tachycardia", "high", at(26))]
    assert cleared[0].alert_id == raised.alert_id


def test_an_alert_raised_within_the_allowance_stays_open_when_the_plan_changes():
    # The raise is still in the buffer, so the new rules re-judge its readings: they would not have
    # raised it, but a care plan applies from now on.
    state = DeviceState()
    [raised] = judge(steady("heart_rate", 130, minutes=10) + tick(10), "tachycardia", state=state).alerts
    stricter = with_plan({"tachycardia": {"tiers.0.threshold": 140, "clear_threshold": 100}})

    kept = judge(steady("heart_rate", 130, minutes=3, start=10), state=state, rules=stricter).alerts
    later = judge(steady("heart_rate", 105, minutes=6, start=13) + steady("heart_rate", 95, minutes=5, start=19)
                  + tick(24), state=state, rules=stricter).alerts

    assert kept == []
    assert story(later) == [("cleared", "tachycardia", "high", at(24))]
    assert later[0].alert_id == raised.alert_id


def test_a_rule_switched_off_mid_episode_leaves_its_alert_open_until_it_comes_back():
    state = DeviceState()
    [raised] = judge(EPISODE, "tachycardia", state=state).alerts
    without = with_plan({"tachycardia": {"enabled": False}})

    quiet = judge(steady("heart_rate", 80, minutes=10, start=15) + tick(25), state=state, rules=without).alerts
    still_open = state.told["tachycardia"][0]
    back = judge(steady("heart_rate", 80, minutes=5, start=30) + tick(35), state=state, rules=DEFAULT_RULES).alerts

    assert quiet == []
    assert still_open == raised.alert_id
    assert story(back) == [("cleared", "tachycardia", "high", at(35))]
    assert back[0].alert_id == raised.alert_id


# -- validating -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "problems"),
    [
        pytest.param({}, [], id="no plan"),
        pytest.param({"tachycardia": {"tiers.0.threshold": 130, "tiers.0.minutes": 15, "enabled": True}}, [],
                     id="a valid plan"),
        pytest.param({"co": {"tiers.2.minutes": 5.0}}, [], id="a whole number written as a float"),
        pytest.param({"tachycardia": {"clear_minutes": -5}},
                     ["tachycardia.clear_minutes: must be 1 to 180 minutes, not -5"], id="a negative duration"),
        pytest.param({"water_leak": {"span_s": -1}}, ["water_leak.span_s: must be 0 to 604800 s, not -1"],
                     id="a negative span"),
        pytest.param({"tachycardia": {"tiers.0.minutes": 2.5}},
                     ["tachycardia.tiers.0.minutes: must be a whole number, not 2.5"], id="half a minute"),
        pytest.param({"gas_leak": {"threshold": "10"}}, ["gas_leak.threshold: must be a number, not '10'"],
                     id="a string"),
        pytest.param({"gas_leak": {"threshold": True}}, ["gas_leak.threshold: must be a number, not True"],
                     id="a boolean"),
        pytest.param({"gas_leak": {"threshold": float("nan")}},
                     ["gas_leak.threshold: must be a finite number, not nan"], id="not a number"),
        pytest.param({"fall": {"enabled": "no"}}, ["fall.enabled: must be true or false, not 'no'"],
                     id="enabled must be a boolean"),
        pytest.param({"tachycardia": {"threshold": 130}},
                     ["tachycardia.threshold: unknown field (overridable: enabled, clear_threshold, clear_minutes, "
                      "max_steps, max_silent_minutes, tiers.0.threshold, tiers.0.minutes)"], id="an unknown field"),
        pytest.param({"co": {"never_at_or_below": 10}},
                     ["co.never_at_or_below: unknown field (overridable: enabled, clear_threshold, clear_minutes, "
                      "max_silent_minutes, tiers.0.threshold, tiers.0.minutes, tiers.1.threshold, "
                      "tiers.1.minutes, tiers.2.threshold, tiers.2.minutes)"], id="a safety floor is fixed"),
        pytest.param({"heartrate": {"enabled": False}},
                     ["heartrate: unknown rule (known: bradycardia, co, electrical_arcing, fall, freeze_risk, "
                      "gas_leak, low_battery, low_spo2, overheat, smoke, tachycardia, water_leak)"],
                     id="an unknown rule"),
        pytest.param({"fall": False}, ["fall: must be an object of field values, not False"], id="not an object"),
        pytest.param([], ["care_plan: must be an object of rule types, not []"], id="not a plan"),
        pytest.param({"tachycardia": {"tiers.0.threshold": 300}},
                     ["tachycardia.tiers.0.threshold: must lie in heart_rate's range, 20 to 250 beats/min, not 300"],
                     id="outside the metric's range"),
        pytest.param({"co": {"tiers.0.threshold": 25}},
                     ["co.clear_threshold: below 30 meets tier 0's at_least 25: a minute could raise and clear the "
                      "alert at once",
                      "co.tiers.0.threshold: must stay above 30, at or below which co never alarms, not 25"],
                     id="CO at or below 30 ppm never alarms"),
        pytest.param({"gas_leak": {"clear_threshold": 12}},
                     ["gas_leak.clear_threshold: below 12 meets the raise condition at_least 10: a reading could "
                      "raise and clear the alert at once"], id="overlapping conditions"),
        pytest.param({"tachycardia": {"clear_minutes": 0}, "bradycardia": {"tiers.0.minutes": 0}},
                     ["tachycardia.clear_minutes: must be 1 to 180 minutes, not 0",
                      "bradycardia.tiers.0.minutes: must be 1 to 180 minutes, not 0"], id="every problem at once"),
    ],
)
def test_validation_names_the_rule_and_field(plan, problems):
    assert validate_overrides(plan) == problems


def test_an_invalid_plan_is_refused_with_every_problem():
    with pytest.raises(ValueError, match=r"tachycardia\.clear_minutes: .*; water_leak\.span_s: "):
        rules_with_overrides(DEFAULT_RULES, {"tachycardia": {"clear_minutes": -5}, "water_leak": {"span_s": -1}})


def test_the_defaults_are_valid():
    plan = {rule.type: {name: getattr(rule, name) for name in describe_overridable()[rule.type]
                        if "." not in name and name != "enabled"} for rule in DEFAULT_RULES}

    assert validate_overrides(plan) == []
    assert with_plan(plan) == DEFAULT_RULES


def test_what_a_plan_may_set():
    fields = describe_overridable()

    assert set(fields) == {rule.type for rule in DEFAULT_RULES}
    assert fields["tachycardia"] == {"enabled": bool, "clear_threshold": float, "clear_minutes": int,
                                     "max_steps": int, "max_silent_minutes": int, "tiers.0.threshold": float,
                                     "tiers.0.minutes": int}
    assert fields["water_leak"] == {"enabled": bool, "span_s": int, "clear_s": int}  # a flag has no threshold
    assert fields["fall"] == {"enabled": bool, "quiet_s": int, "regroup_s": int}
    assert all("update_every_s" not in names for names in fields.values())
