"""Wearable scenarios: heart rate, SpO2, falls, a watch off the wrist, exercise, late and out-of-order syncs.

A wearable samples every 15 s (every 5 s around a fall) and sends a message every 30 s. Episodes
start on whole minutes after 3 quiet minutes and are followed by at least 6 quiet minutes, so event
time has moved well past them when the scenario ends.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulators.labelled.model import (
    HEALTH_RULES,
    Expected,
    ReversedBlocks,
    Role,
    Scenario,
    Segment,
    between,
    instant,
    minutes,
    onwards,
    span,
    spanned,
    sustained,
)
from simulators.labelled.shapes import Absent, Balanced, Const, Linear, Noisy, Pulses, Shape

SAMPLE_S = 15
MESSAGE_S = 30
FALL_SAMPLE_S = 5

AT_REST: dict[str, Shape] = {"steps": Const(0), "worn": Const(1)}
TACHY = Noisy(134, 4, 123, 148)  # a resting tachycardia: every reading above 120
BRADY = Noisy(36, 1.5, 31, 39)
RESTING = Noisy(76, 2.5, 66, 86)
RUNNING: dict[str, Shape] = {"heart_rate": Noisy(150, 4, 138, 165), "steps": Noisy(42, 3, 30, 55)}
WALKING_5S: dict[str, Shape] = {"heart_rate": Noisy(95, 3, 85, 105), "steps": Noisy(8, 1.5, 5, 11)}
STILL_5S: dict[str, Shape] = {"heart_rate": Noisy(100, 3, 90, 110), "steps": Const(0)}
OFF_WRIST: dict[str, Shape] = {"worn": Const(0), "heart_rate": Absent(), "spo2": Absent(), "skin_temp": Absent(),
                               "steps": Const(0)}


def wearable(name: str, role: Role, summary: str, total_minutes: int, segments: Iterable[Segment],
             expected: Iterable[Expected] = (), absent: Iterable[str] = (), *, sample_s: int = SAMPLE_S,
             message_s: int = MESSAGE_S, **extra) -> Scenario:
    return Scenario(name=name, kind="wearable", role=role, summary=summary, duration_s=total_minutes * 60,
                    sample_s=sample_s, message_s=message_s, segments=tuple(segments), expected=tuple(expected),
                    absent=tuple(absent), **extra)


def _steps_each_minute(first_minute: int, count: int, steps: int) -> Pulses:
    """`steps` steps in one reading of each of `count` minutes: a few paces to the window and back."""
    return Pulses({(first_minute + k) * 60 + 15: steps for k in range(count)})


def tachycardia() -> list[Scenario]:
    t = "tachycardia"
    return [
        wearable("tachycardia_at_rest", "positive", "heart rate 123-148 (mean 134) at rest, worn, for 15 minutes",
                 24, [minutes(3, 15, heart_rate=TACHY, **AT_REST)], [sustained(t, "high", 3, 10)]),
        wearable("tachycardia_121_for_10min", "inside", "1-minute means exactly 121 for exactly 10 minutes at rest",
                 19, [minutes(3, 10, heart_rate=Balanced(121, 2), **AT_REST)], [sustained(t, "high", 3, 10)]),
        wearable("tachycardia_120_for_12min", "outside", "1-minute means exactly 120 (not above 120) for 12 minutes",
                 21, [minutes(3, 12, heart_rate=Balanced(120, 2), **AT_REST)], absent=[t]),
        wearable("tachycardia_121_for_9min", "outside", "1-minute means 121 for 9 minutes only", 18,
                 [minutes(3, 9, heart_rate=Balanced(121, 2), **AT_REST)], absent=[t]),
        wearable("tachycardia_99_steps", "inside", "121 for 10 minutes with 99 steps in them (fewer than 100)", 19,
                 [minutes(3, 10, heart_rate=Balanced(121, 2), worn=Const(1), steps=_steps_each_minute(3, 9, 11))],
                 [sustained(t, "high", 3, 10)]),
        wearable("tachycardia_100_steps", "outside", "121 for 10 minutes with 100 steps in them: not inactive", 19,
                 [minutes(3, 10, heart_rate=Balanced(121, 2), worn=Const(1), steps=_steps_each_minute(3, 10, 10))],
                 absent=[t]),
        wearable("tachycardia_missing_minute", "outside",
                 "17 minutes of resting tachycardia, but its 8th minute has no heart-rate reading: runs of 7 and 9",
                 26,
                 [minutes(3, 17, heart_rate=TACHY, **AT_REST), minutes(10, 1, heart_rate=Absent())], absent=[t]),
        wearable("tachycardia_dip_one_alert", "positive",
                 "25 minutes of resting tachycardia with one minute at 115 (not a clear): one alert, not two", 34,
                 [minutes(3, 25, heart_rate=TACHY, **AT_REST), minutes(15, 1, heart_rate=Balanced(115, 2))],
                 [sustained(t, "high", 3, 10)]),
        wearable("tachycardia_two_episodes", "positive",
                 "11 minutes of tachycardia, 8 calm minutes (clears after 5), 11 more: two alerts", 39,
                 [minutes(3, 30, **AT_REST), minutes(3, 11, heart_rate=TACHY), minutes(14, 8, heart_rate=RESTING),
                  minutes(22, 11, heart_rate=TACHY)],
                 [sustained(t, "high", 3, 10), sustained(t, "high", 22, 10)]),
        wearable("tachycardia_late_sync", "positive",
                 "a watch offline for 3 h 15 min uploads it all at once (20-minute messages); tachycardia at rest "
                 "at its start: triggered_at about 3 hours ago", 195,
                 [minutes(5, 12, heart_rate=TACHY, **AT_REST)], [sustained(t, "high", 5, 10)],
                 message_s=1200, end_margin_s=60),
        wearable("tachycardia_out_of_order", "positive",
                 "12 minutes of resting tachycardia, each 2 minutes of messages delivered newest first", 21,
                 [minutes(3, 12, heart_rate=TACHY, **AT_REST)], [sustained(t, "high", 3, 10)],
                 delivery=ReversedBlocks(120)),
        wearable("exercise_run", "confounder",
                 "a 20-minute run at 150 bpm and 168 steps/min, warm-up and cool-down: exercise, not tachycardia", 36,
                 [between(180, 360, heart_rate=Linear(80, 145, 2), steps=Noisy(25, 3, 15, 35)),
                  between(360, 1560, **RUNNING),
                  between(1560, 1800, heart_rate=Linear(150, 88, 2), steps=Noisy(3, 2, 0, 8)),
                  onwards(1800, heart_rate=RESTING)], absent=[t]),
        wearable("exercise_intervals", "confounder",
                 "six rounds of 3 minutes running and 1 minute standing still at 132 bpm", 33,
                 [seg for k in range(6) for seg in (minutes(3 + 4 * k, 3, **RUNNING),
                                                    minutes(6 + 4 * k, 1, heart_rate=Noisy(132, 3, 124, 140),
                                                            steps=Const(0)))],
                 absent=[t]),
        wearable("tachycardia_watch_off_midway", "confounder",
                 "16 minutes at 132 bpm at rest, but the watch is off the wrist (worn=0) for minutes 6-8: "
                 "runs of 6 and 7 worn minutes", 25,
                 [minutes(3, 16, heart_rate=TACHY, **AT_REST), minutes(9, 3, worn=Const(0))], absent=[t]),
        wearable("watch_off_garbage_readings", "confounder",
                 "the watch lies off the wrist (worn=0) for 20 minutes and its optical sensor reads 140 bpm and "
                 "SpO2 80", 29,
                 [minutes(3, 20, worn=Const(0), steps=Const(0), heart_rate=Noisy(140, 6, 125, 160),
                          spo2=Noisy(80, 3, 70, 87))], absent=[t, "low_spo2"]),
    ]


def bradycardia() -> list[Scenario]:
    b = "bradycardia"
    return [
        wearable("bradycardia_at_rest", "positive", "heart rate 31-39 (mean 36), worn, for 15 minutes", 24,
                 [minutes(3, 15, heart_rate=BRADY, **AT_REST)], [sustained(b, "high", 3, 10)]),
        wearable("bradycardia_39_for_10min", "inside", "1-minute means exactly 39 for exactly 10 minutes", 19,
                 [minutes(3, 10, heart_rate=Balanced(39, 2), **AT_REST)], [sustained(b, "high", 3, 10)]),
        wearable("bradycardia_40_for_12min", "outside", "1-minute means exactly 40 (not below 40) for 12 minutes", 21,
                 [minutes(3, 12, heart_rate=Balanced(40, 2), **AT_REST)], absent=[b]),
        wearable("bradycardia_39_for_9min", "outside", "1-minute means 39 for 9 minutes only", 18,
                 [minutes(3, 9, heart_rate=Balanced(39, 2), **AT_REST)], absent=[b]),
        wearable("athlete_asleep_hr_43", "confounder", "a fit member asleep for an hour at 40-47 bpm", 69,
                 [minutes(3, 60, heart_rate=Noisy(43, 1.2, 40, 47), **AT_REST)], absent=[b]),
        wearable("watch_on_table_low_hr", "confounder",
                 "the watch lies on the bedside table (worn=0) for 20 minutes reading 25-38 bpm", 29,
                 [minutes(3, 20, worn=Const(0), steps=Const(0), heart_rate=Noisy(32, 3, 25, 38))], absent=[b]),
    ]


def low_spo2() -> list[Scenario]:
    s = "low_spo2"
    return [
        wearable("low_spo2_at_87", "positive", "SpO2 85-89 (mean 87), worn, for 8 minutes", 17,
                 [minutes(3, 8, spo2=Noisy(87, 1, 85, 89), **AT_REST)], [sustained(s, "high", 3, 5)]),
        wearable("low_spo2_89_for_5min", "inside", "1-minute means exactly 89 for exactly 5 minutes", 14,
                 [minutes(3, 5, spo2=Balanced(89, 1), **AT_REST)], [sustained(s, "high", 3, 5)]),
        wearable("low_spo2_90_for_8min", "outside", "1-minute means exactly 90 (not below 90) for 8 minutes", 17,
                 [minutes(3, 8, spo2=Balanced(90, 1), **AT_REST)], absent=[s]),
        wearable("low_spo2_89_for_4min", "outside", "1-minute means 89 for 4 minutes only", 13,
                 [minutes(3, 4, spo2=Balanced(89, 1), **AT_REST)], absent=[s]),
        wearable("low_spo2_84_for_2min", "inside", "1-minute means exactly 84 for exactly 2 minutes: critical", 11,
                 [minutes(3, 2, spo2=Balanced(84, 1), **AT_REST)], [sustained(s, "critical", 3, 2)]),
        wearable("low_spo2_85_for_3min", "outside",
                 "1-minute means exactly 85 (not below 85) for 3 minutes: neither critical nor 5 minutes below 90",
                 12, [minutes(3, 3, spo2=Balanced(85, 1), **AT_REST)], absent=[s]),
        wearable("low_spo2_84_for_1min", "outside", "1-minute mean 84 for 1 minute only", 10,
                 [minutes(3, 1, spo2=Balanced(84, 1), **AT_REST)], absent=[s]),
        wearable("low_spo2_severe", "positive",
                 "SpO2 75-84 for 8 minutes: critical after 2 minutes, one alert (the 5-minute high condition joins it)",
                 17, [minutes(3, 8, spo2=Noisy(80, 2, 75, 84), **AT_REST)], [sustained(s, "critical", 3, 2)]),
    ]


def _fall(name: str, role: Role, summary: str, segments: Iterable[Segment], expected: Iterable[Expected] = (),
          total_minutes: int = 10, **extra) -> Scenario:
    return wearable(name, role, summary, total_minutes, segments, expected, () if expected else ["fall"],
                    sample_s=FALL_SAMPLE_S, **extra)


def fall() -> list[Scenario]:
    f = "fall"
    return [
        _fall("fall_no_movement", "positive", "walking, a fall at 3:00, then lying still for 9 minutes",
              [between(0, 175, **WALKING_5S), onwards(175, **STILL_5S), span(180, 0, fall=Const(1))],
              [spanned(f, "critical", 180, 60, FALL_SAMPLE_S)], total_minutes=12),
        _fall("fall_still_60s_then_walks", "inside", "a fall, no steps for exactly 60 s, then walking",
              [between(0, 175, **WALKING_5S), between(175, 245, **STILL_5S), onwards(245, **WALKING_5S),
               span(180, 0, fall=Const(1))], [spanned(f, "critical", 180, 60, FALL_SAMPLE_S)]),
        _fall("fall_walks_at_55s", "outside", "a fall, then steps 55 s later: the wearer got up within the minute",
              [between(0, 175, **WALKING_5S), between(175, 235, **STILL_5S), onwards(235, **WALKING_5S),
               span(180, 0, fall=Const(1))]),
        _fall("fall_got_up", "confounder", "a fall, then walking again 15 s later",
              [between(0, 175, **WALKING_5S), between(175, 195, **STILL_5S), onwards(195, **WALKING_5S),
               span(180, 0, fall=Const(1))]),
        _fall("fall_watch_dropped", "confounder",
              "the watch is taken off (worn=0) and knocked off the table: a fall flag from a watch nobody wears",
              [between(0, 120, **WALKING_5S), onwards(120, **OFF_WRIST), span(180, 0, fall=Const(1))]),
        _fall("fall_got_up_out_of_order", "confounder",
              "a fall at 3:25 and walking again 10 s later, each 2 minutes of messages delivered newest first, "
              "so the steps arrive before the fall",
              [between(0, 200, **WALKING_5S), between(200, 215, **STILL_5S), onwards(215, **WALKING_5S),
               span(205, 0, fall=Const(1))], delivery=ReversedBlocks(120)),
    ]


def battery_and_syncs() -> list[Scenario]:
    return [
        wearable("low_battery_wearable", "positive", "a watch drains 12 → 11 → 9 %", 15,
                 [between(0, 300, battery=Const(12)), between(300, 600, battery=Const(11)),
                  onwards(600, battery=Const(9))], [instant("low_battery", "low", 600, SAMPLE_S)]),
        wearable("watch_charged_at_12pct", "confounder",
                 "the member puts the watch on the charger at 12 %: off the wrist while it charges to 45 %", 30,
                 [between(0, 180, battery=Const(13)), between(180, 360, battery=Const(12)),
                  onwards(360, battery=Linear(12, 45), **OFF_WRIST)], absent=["low_battery"]),
        wearable("late_sync_quiet", "confounder",
                 "a watch offline for 3 hours uploads an ordinary afternoon at once, a 20-minute walk included", 180,
                 [minutes(60, 20, heart_rate=Noisy(102, 4, 90, 115), steps=Noisy(25, 3, 15, 35))],
                 absent=HEALTH_RULES, message_s=1200, end_margin_s=60),
    ]


def scenarios() -> list[Scenario]:
    return [*tachycardia(), *bradycardia(), *low_spo2(), *fall(), *battery_and_syncs()]
