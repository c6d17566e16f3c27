"""Home rules at their boundaries: co (three UL 2034 tiers), freeze_risk (two tiers), gas_leak, smoke,
overheat, low_battery and electrical_arcing, on a fixed clock. water_leak's are in test_rules.py.
"""

from __future__ import annotations

import pytest

from tests.unit.rules.story import at, every, judge, minutely, steady, story, tick

# -- co: sustained 1-minute means, three tiers, never at 30 ppm or below --------------------------


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(steady("co_ppm", 30, minutes=120) + tick(120), [], id="30 ppm for 2 hours never alarms"),
        pytest.param(steady("co_ppm", 69, minutes=120) + tick(120), [], id="69 ppm for 2 hours"),
        pytest.param(steady("co_ppm", 70, minutes=59) + tick(59), [], id="70 ppm for 59 minutes"),
        pytest.param(steady("co_ppm", 70, minutes=60) + tick(60), [at(60)], id="70 ppm for 60 minutes"),
        pytest.param(steady("co_ppm", 150, minutes=9) + tick(9), [], id="150 ppm for 9 minutes"),
        pytest.param(steady("co_ppm", 150, minutes=10) + tick(10), [at(10)], id="150 ppm for 10 minutes"),
        pytest.param(steady("co_ppm", 149, minutes=10) + tick(10), [], id="149 ppm for 10 minutes"),
        pytest.param(steady("co_ppm", 400, minutes=3) + tick(3), [], id="400 ppm for 3 minutes"),
        pytest.param(steady("co_ppm", 400, minutes=4) + tick(4), [at(4)], id="400 ppm for 4 minutes"),
        pytest.param(steady("co_ppm", 399, minutes=4) + tick(4), [], id="399 ppm for 4 minutes"),
        pytest.param(minutely("co_ppm", *[[100, 200]] * 10) + tick(10), [at(10)], id="readings averaging 150"),
        pytest.param(minutely("co_ppm", *[160, None, None, None, None] * 2, 160) + tick(11), [at(11)],
                     id="a sensor sampling every 5 minutes"),
        pytest.param(minutely("co_ppm", *[160, None, None, None, None, None] * 2, 160) + tick(13), [],
                     id="every 6 minutes leaves too long a silence"),
    ],
)
def test_co_alarms_at_the_ul_2034_points(readings, expected):
    alerts = judge(readings, "co").alerts

    assert story(alerts) == [("raised", "co", "critical", moment) for moment in expected]


def test_co_evidence_names_the_tier_that_raised_it():
    [raised] = judge(steady("co_ppm", 420, minutes=4) + tick(4), "co").alerts

    assert raised.evidence["tier"] == 2
    assert [m["mean"] for m in raised.evidence["minutes"]] == [420.0] * 4
    assert raised.evidence["parameters"]["never_at_or_below"] == 30


CO_EPISODE = steady("co_ppm", 160, minutes=10)  # raised at minute 10


@pytest.mark.parametrize(
    ("after", "cleared"),
    [
        pytest.param(steady("co_ppm", 29, minutes=10, start=10) + tick(20), [at(20)], id="10 minutes below 30 clear"),
        pytest.param(steady("co_ppm", 30, minutes=10, start=10) + tick(20), [], id="30 ppm does not"),
        pytest.param(steady("co_ppm", 0, minutes=9, start=10) + tick(19), [], id="9 minutes do not"),
    ],
)
def test_co_clears_after_ten_minutes_below_30(after, cleared):
    alerts = judge(CO_EPISODE + after, "co").alerts

    assert [a.cleared_at_ms for a in alerts if a.change == "cleared"] == cleared


# -- freeze_risk: two tiers over 30 minutes ----------------------------------------------------


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(steady("temperature", 5.0, minutes=30) + tick(30), [("medium", at(30))], id="5.0 for 30 min"),
        pytest.param(steady("temperature", 5.1, minutes=30) + tick(30), [], id="5.1 is above 5"),
        pytest.param(steady("temperature", 5.0, minutes=29) + tick(29), [], id="29 minutes"),
        pytest.param(steady("temperature", -7, minutes=30) + tick(30), [("high", at(30))], id="-7 for 30 min: high"),
        pytest.param(steady("temperature", -6.7, minutes=30) + tick(30), [("high", at(30))], id="-6.7 is 20 °F"),
        pytest.param(steady("temperature", -6.6, minutes=30) + tick(30), [("medium", at(30))], id="-6.6: medium"),
        pytest.param(minutely("temperature", 4, *[None] * 29, 4) + tick(31), [("medium", at(31))],
                     id="a sensor sampling every 30 minutes"),
        pytest.param(minutely("temperature", 4, *[None] * 30, 4) + tick(32), [], id="31 minutes apart"),
    ],
)
def test_freeze_risk_after_30_minutes_at_5_degrees_or_below(readings, expected):
    alerts = judge(readings, "freeze_risk").alerts

    assert [(a.severity, a.triggered_at_ms) for a in alerts if a.change == "raised"] == expected


def test_freeze_risk_that_deepens_below_the_pipe_freeze_point_becomes_high():
    readings = steady("temperature", 4, minutes=30) + steady("temperature", -7, minutes=30, start=30) + tick(60)

    alerts = judge(readings, "freeze_risk").alerts

    assert [(a.change, a.severity) for a in alerts] == [("raised", "medium"), ("updated", "medium"),
                                                         ("updated", "high")]
    assert len({a.alert_id for a in alerts}) == 1


@pytest.mark.parametrize(
    ("after", "cleared"),
    [
        pytest.param(steady("temperature", 8, minutes=30, start=30) + tick(60), [at(60)], id="8 °C for 30 minutes"),
        pytest.param(steady("temperature", 7.9, minutes=30, start=30) + tick(60), [], id="7.9 °C"),
        pytest.param(steady("temperature", 20, minutes=29, start=30) + tick(59), [], id="29 minutes"),
    ],
)
def test_freeze_risk_clears_after_30_minutes_at_8_degrees_or_more(after, cleared):
    alerts = judge(steady("temperature", 3, minutes=30) + after, "freeze_risk").alerts

    assert [a.cleared_at_ms for a in alerts if a.change == "cleared"] == cleared


# -- span rules: gas_leak, smoke, overheat, low_battery --------------------------------------------


def once(metric: str, value: float, second: float) -> list:
    return [(at(0, second), metric, float(value))]


@pytest.mark.parametrize(
    ("rule", "readings", "expected"),
    [
        pytest.param("gas_leak", once("gas_lel", 10, 0) + once("gas_lel", 12, 30), [at(0, 30)], id="gas 10% for 30 s"),
        pytest.param("gas_leak", once("gas_lel", 10, 0) + once("gas_lel", 12, 29.999), [], id="gas for 29.999 s"),
        pytest.param("gas_leak", every("gas_lel", 9.9, from_s=0, to_s=120), [], id="gas at 9.9%"),
        pytest.param("gas_leak", every("gas_lel", 10, from_s=0, to_s=20) + once("gas_lel", 8, 25)
                     + every("gas_lel", 10, from_s=30, to_s=50), [], id="gas dipping under 10% restarts"),
        pytest.param("smoke", every("smoke", 1, from_s=0, to_s=10), [], id="10 s of toast smoke"),
        pytest.param("smoke", every("smoke", 1, from_s=0, to_s=29, step_s=29), [], id="smoke for 29 s"),
        pytest.param("smoke", every("smoke", 1, from_s=0, to_s=30), [at(0, 30)], id="smoke for 30 s"),
        pytest.param("overheat", every("temperature", 57, from_s=0, to_s=30), [at(0, 30)], id="57 °C for 30 s"),
        pytest.param("overheat", every("temperature", 56.9, from_s=0, to_s=300), [], id="56.9 °C"),
        pytest.param("overheat", every("temperature", 60, from_s=0, to_s=20), [], id="60 °C for 20 s"),
        pytest.param("low_battery", once("battery", 10, 0), [at(0)], id="battery at 10% raises at once"),
        pytest.param("low_battery", once("battery", 11, 0), [], id="battery at 11%"),
        pytest.param("low_battery", once("battery", 10, 0) + once("battery", 9, 60) + once("battery", 8, 120),
                     [at(0)], id="draining further is the same alert"),
    ],
)
def test_span_rules_raise_at_their_thresholds(rule, readings, expected):
    alerts = judge(readings, rule).alerts

    assert [a.triggered_at_ms for a in alerts if a.change == "raised"] == expected


@pytest.mark.parametrize(
    ("rule", "episode", "after", "cleared"),
    [
        pytest.param("gas_leak", every("gas_lel", 20, from_s=0, to_s=30), every("gas_lel", 4.9, from_s=40, to_s=340),
                     [at(0, 340)], id="gas below 5% for 5 minutes"),
        pytest.param("gas_leak", every("gas_lel", 20, from_s=0, to_s=30), every("gas_lel", 5, from_s=40, to_s=400),
                     [], id="gas at 5% does not clear"),
        pytest.param("gas_leak", every("gas_lel", 20, from_s=0, to_s=30),
                     every("gas_lel", 1, from_s=40, to_s=200) + once("gas_lel", 7, 205)
                     + every("gas_lel", 1, from_s=210, to_s=509), [], id="gas at 7% restarts the clearing"),
        pytest.param("gas_leak", every("gas_lel", 20, from_s=0, to_s=30),
                     every("gas_lel", 1, from_s=40, to_s=200) + once("gas_lel", 7, 205)
                     + every("gas_lel", 1, from_s=210, to_s=510), [at(0, 510)], id="5 minutes after it"),
        pytest.param("smoke", every("smoke", 1, from_s=0, to_s=30), every("smoke", 0, from_s=40, to_s=340),
                     [at(0, 340)], id="smoke gone for 5 minutes"),
        pytest.param("smoke", every("smoke", 1, from_s=0, to_s=30), once("smoke", 0, 40) + once("smoke", 0, 339.999),
                     [], id="smoke gone for 4:59.999"),
        pytest.param("overheat", every("temperature", 60, from_s=0, to_s=30),
                     every("temperature", 44.9, from_s=40, to_s=340), [at(0, 340)], id="below 45 °C for 5 minutes"),
        pytest.param("overheat", every("temperature", 60, from_s=0, to_s=30),
                     every("temperature", 45, from_s=40, to_s=400), [], id="45 °C does not clear"),
        pytest.param("low_battery", once("battery", 10, 0), once("battery", 19, 60), [], id="battery at 19%"),
        pytest.param("low_battery", once("battery", 10, 0), once("battery", 20, 60), [at(0, 60)],
                     id="battery at 20% clears at once"),
    ],
)
def test_span_rules_clear_on_their_clear_condition(rule, episode, after, cleared):
    alerts = judge(episode + after, rule).alerts

    assert [a.change for a in alerts if a.change != "updated"][:1] == ["raised"]
    assert [a.cleared_at_ms for a in alerts if a.change == "cleared"] == cleared


def test_low_battery_recharged_and_drained_again_is_a_new_alert():
    alerts = judge(once("battery", 10, 0) + once("battery", 20, 60) + once("battery", 10, 120), "low_battery").alerts

    assert story(alerts) == [("raised", "low_battery", "low", at(0)), ("cleared", "low_battery", "low", at(0, 60)),
                             ("raised", "low_battery", "low", at(0, 120))]
    assert alerts[0].alert_id != alerts[2].alert_id


# -- electrical_arcing: a count over 10 minutes, cleared after 24 quiet hours ----------------------

HOUR_MIN = 60


def arcs(*minutes_values: tuple[float, float]) -> list:
    return [(at(minute), "arc_events", float(value)) for minute, value in minutes_values]


def quiet(to_minute: int, *, from_minute: int = 0, every_min: int = 60) -> list:
    """The sensor's regular report of no arcing, which moves its event time on."""
    return [(at(m, 30), "arc_events", 0.0) for m in range(from_minute, to_minute + 1, every_min)]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(arcs((0, 1), (5, 1)), [], id="2 events in 10 minutes"),
        pytest.param(arcs((0, 1), (5, 1), (10, 1)), [at(10)], id="3 events within 10 minutes, both ends included"),
        pytest.param(arcs((0, 1), (5, 1), (10.00002, 1)), [], id="3 events over 10 minutes and a bit"),
        pytest.param(arcs((0, 3)), [at(0)], id="one report of 3 events"),
        pytest.param(arcs((0, 2), (9, 1)), [at(9)], id="2 then 1"),
        pytest.param(quiet(600, every_min=5), [], id="no arcing"),
    ],
)
def test_electrical_arcing_needs_3_events_within_10_minutes(readings, expected):
    alerts = judge(readings, "electrical_arcing").alerts

    assert [a.triggered_at_ms for a in alerts if a.change == "raised"] == expected


@pytest.mark.parametrize(
    ("after", "cleared"),
    [
        pytest.param(quiet(25 * HOUR_MIN, from_minute=11), [at(10 + 24 * HOUR_MIN)], id="24 quiet hours clear"),
        pytest.param(quiet(24 * HOUR_MIN + 9, from_minute=11, every_min=1), [], id="23:59 quiet do not"),
        pytest.param(quiet(48 * HOUR_MIN, from_minute=11) + arcs((23 * HOUR_MIN, 1)),
                     [at(23 * HOUR_MIN + 24 * HOUR_MIN)], id="one more arc restarts the 24 hours"),
        pytest.param(arcs((10 + 24 * HOUR_MIN, 0)), [at(10 + 24 * HOUR_MIN)], id="judged when a reading says so"),
        pytest.param([], [], id="silence says nothing"),
    ],
)
def test_electrical_arcing_clears_after_24_hours_without_arcing(after, cleared):
    alerts = judge(arcs((0, 1), (5, 1), (10, 1)) + after, "electrical_arcing").alerts

    assert [a.cleared_at_ms for a in alerts if a.change == "cleared"] == cleared
