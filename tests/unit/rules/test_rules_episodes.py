"""Alert semantics common to every rule: one alert per open condition, a persisting condition refreshes
the evidence at a limited rate, a severity change at once, and a new episode after clearing is a new alert.
"""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from tests.unit.rules.story import MINUTE_MS, at, every, judge, steady, tick


def later(readings: list, seconds: float) -> list:
    return [(ts + round(seconds * 1000), metric, value) for ts, metric, value in readings]


HOUR_S, DAY_S = 3600, 86_400

# Per rule: readings that raise and persist, readings that clear, then the condition again.
EPISODES = {
    "tachycardia": (steady("heart_rate", 130, minutes=30), steady("heart_rate", 90, minutes=6, start=30),
                    steady("heart_rate", 130, minutes=11, start=36) + tick(47)),
    "bradycardia": (steady("heart_rate", 35, minutes=30), steady("heart_rate", 60, minutes=6, start=30),
                    steady("heart_rate", 35, minutes=11, start=36) + tick(47)),
    "low_spo2": (steady("spo2", 87, minutes=30), steady("spo2", 97, minutes=6, start=30),
                 steady("spo2", 87, minutes=6, start=36) + tick(42)),
    "co": (steady("co_ppm", 160, minutes=40), steady("co_ppm", 5, minutes=11, start=40),
           steady("co_ppm", 160, minutes=11, start=51) + tick(62)),
    "freeze_risk": (steady("temperature", 2, minutes=60), steady("temperature", 15, minutes=31, start=60),
                    steady("temperature", 2, minutes=31, start=91) + tick(122)),
    "gas_leak": (every("gas_lel", 30, from_s=0, to_s=1800), every("gas_lel", 0, from_s=1810, to_s=2200),
                 every("gas_lel", 30, from_s=2210, to_s=2300)),
    "smoke": (every("smoke", 1, from_s=0, to_s=1800), every("smoke", 0, from_s=1810, to_s=2200),
              every("smoke", 1, from_s=2210, to_s=2300)),
    "water_leak": (every("water_leak", 1, from_s=0, to_s=1800), every("water_leak", 0, from_s=1810, to_s=2200),
                   every("water_leak", 1, from_s=2210, to_s=2300)),
    "overheat": (every("temperature", 70, from_s=0, to_s=1800), every("temperature", 20, from_s=1810, to_s=2200),
                 every("temperature", 70, from_s=2210, to_s=2300)),
    "low_battery": (every("battery", 8, from_s=0, to_s=HOUR_S, step_s=300),
                    every("battery", 90, from_s=HOUR_S + 300, to_s=2 * HOUR_S, step_s=300),
                    every("battery", 9, from_s=2 * HOUR_S + 300, to_s=3 * HOUR_S, step_s=300)),
    "electrical_arcing": (every("arc_events", 2, from_s=0, to_s=HOUR_S, step_s=60),
                          every("arc_events", 0, from_s=HOUR_S + 60, to_s=HOUR_S + DAY_S, step_s=3600),
                          every("arc_events", 5, from_s=2 * DAY_S, to_s=2 * DAY_S + 60, step_s=60)),
}


@pytest.mark.parametrize("rule", sorted(EPISODES))
def test_one_alert_per_episode_and_a_new_one_after_clearing(rule):
    persisting, clearing, again = EPISODES[rule]

    alerts = judge(persisting + clearing + again, rule).alerts

    assert [a.change for a in alerts if a.change != "updated"] == ["raised", "cleared", "raised"]
    first, cleared, second = (a for a in alerts if a.change != "updated")
    assert cleared.alert_id == first.alert_id != second.alert_id
    assert {a.alert_id for a in alerts if a.change == "updated"} <= {first.alert_id, second.alert_id}
    assert all(a.type == rule for a in alerts)


@pytest.mark.parametrize("rule", sorted(EPISODES))
def test_a_persisting_condition_is_refreshed_at_most_every_15_minutes(rule):
    persisting, _, _ = EPISODES[rule]

    alerts = judge(persisting, rule).alerts

    raised, *updates = alerts
    assert raised.change == "raised"
    assert all(u.change == "updated" and u.alert_id == raised.alert_id for u in updates)
    refreshed = [raised.triggered_at_ms] + [_refreshed_at(u) for u in updates]
    assert all(b - a >= 15 * MINUTE_MS for a, b in itertools.pairwise(refreshed))


def _refreshed_at(update) -> int:
    """The event time an update speaks of: its last minute's end, or its run's last reading."""
    evidence = update.evidence
    if "minutes" in evidence:
        text, extra = evidence["minutes"][-1]["minute"], MINUTE_MS
    elif "events" in evidence:
        text, extra = evidence["events"][-1]["at"], 0
    else:
        text, extra = evidence["last_at"], 0
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) + extra


def test_an_hour_long_leak_is_one_alert_refreshed_three_times():
    alerts = judge(every("water_leak", 1, from_s=0, to_s=3600), "water_leak").alerts

    assert [(a.change, _refreshed_at(a)) for a in alerts] == [
        ("raised", at(0, 60)), ("updated", at(0, 960)), ("updated", at(0, 1860)), ("updated", at(0, 2760)),
    ]
    assert alerts[-1].evidence["span_s"] == 2760
    assert alerts[-1].triggered_at_ms == at(0, 60)


def test_an_update_carries_fresh_evidence_and_the_episode_s_trigger_time():
    alerts = judge(steady("heart_rate", 140, minutes=30) + tick(30), "tachycardia").alerts

    raised, *updates = alerts
    assert [u.triggered_at_ms for u in updates] == [raised.triggered_at_ms] * len(updates)
    assert [u.evidence["minutes"][-1]["minute"] for u in updates] == ["2026-11-22T02:24:00Z"]
    assert updates[0].severity == "high"


@pytest.mark.parametrize("rule", sorted(EPISODES))
def test_the_same_story_told_twice_gives_the_same_ids(rule):
    persisting, clearing, again = EPISODES[rule]
    readings = persisting + clearing + again

    assert judge(readings, rule).alerts == judge(readings, rule).alerts
    assert [a.alert_id for a in judge(later(readings, 60), rule).alerts] != [
        a.alert_id for a in judge(readings, rule).alerts]
