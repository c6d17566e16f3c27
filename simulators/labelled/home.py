"""Home-sensor scenarios: smoke, CO, gas, water, freeze, overheat, arcing and a home hub's battery.

Short hazards (smoke, gas, water, overheat) are sampled every 5 s so a span can miss its mark by 5 s;
slow ones (CO, freeze, arcing, battery) every 30 s. Every episode starts at 3:00 after quiet readings
and is followed by at least 6 quiet minutes.
"""

from __future__ import annotations

from collections.abc import Iterable

from simulators.labelled.model import (
    HOME_RULES,
    Expected,
    Redelivered,
    ReversedBlocks,
    Role,
    Scenario,
    Segment,
    between,
    instant,
    onwards,
    span,
    spanned,
)
from simulators.labelled.shapes import Const, Linear, Noisy, Pulses

FAST_S = 5
SLOW_S = 30
AT = 180  # every episode starts 3 minutes in
TAIL = 360
WET, SMOKE = Const(1), Const(1)


def home(name: str, role: Role, summary: str, duration_s: int, segments: Iterable[Segment],
         expected: Iterable[Expected] = (), absent: Iterable[str] = (), *, sample_s: int = FAST_S,
         **extra) -> Scenario:
    return Scenario(name=name, kind="home", role=role, summary=summary, duration_s=duration_s, sample_s=sample_s,
                    message_s=30 if sample_s == FAST_S else 60, segments=tuple(segments), expected=tuple(expected),
                    absent=tuple(absent), **extra)


def smoke() -> list[Scenario]:
    s = "smoke"
    return [
        home("smoke_3min", "positive", "the smoke alarm sounds for 3 minutes as the room warms to 34 °C", 900,
             [span(AT, 180, smoke=SMOKE, temperature=Linear(21, 34, 0.2)),
              between(AT + 181, 600, temperature=Linear(34, 24))], [spanned(s, "critical", AT, 30, FAST_S)]),
        home("smoke_30s", "inside", "smoke in readings spanning exactly 30 s", 720,
             [span(AT, 30, smoke=SMOKE)], [spanned(s, "critical", AT, 30, FAST_S)]),
        home("smoke_25s", "outside", "smoke in readings spanning 25 s", 720, [span(AT, 25, smoke=SMOKE)], absent=[s]),
        home("toast_10s", "confounder", "burnt toast: the alarm sounds for 10 s in a warm kitchen", 720,
             [span(AT, 10, smoke=SMOKE), span(AT - 60, 120, temperature=Noisy(24, 0.3))], absent=[s]),
        home("smoke_intermittent", "positive",
             "the alarm sounds, stops and sounds again three times a minute apart: one episode, one alert", 960,
             [span(AT + 120 * k, 60, smoke=SMOKE) for k in range(3)], [spanned(s, "critical", AT, 30, FAST_S)]),
        home("kitchen_fire", "positive", "smoke for 4 minutes while the kitchen heats past 57 °C for 3 minutes", 900,
             [span(AT, 240, smoke=SMOKE), between(AT, 240, temperature=Linear(22, 40)),
              between(240, 300, temperature=Linear(40, 56)), span(300, 180, temperature=Noisy(62, 1.5, 57, 70)),
              between(481, 900, temperature=Linear(50, 25))],
             [spanned(s, "critical", AT, 30, FAST_S), spanned("overheat", "critical", 300, 30, FAST_S)]),
        home("shower", "confounder",
             "a 15-minute hot shower: bathroom humidity 90-100 % at 28-32 °C, then airing: no alert of any kind",
             1500, [span(AT, 900, humidity=Noisy(95, 1.5, 90, 100), temperature=Noisy(30, 0.4, 28, 32)),
                    between(AT + 901, 1500, humidity=Linear(90, 55), temperature=Linear(29, 22))],
             absent=HOME_RULES),
    ]


def co() -> list[Scenario]:
    c = "co"
    return [
        home("co_180_for_15min", "positive", "a faulty boiler: CO 170-200 ppm for 15 minutes", AT + 900 + TAIL,
             [span(AT, 900, co_ppm=Noisy(180, 6, 170, 200))], [spanned(c, "critical", AT, 600, SLOW_S)],
             sample_s=SLOW_S),
        home("co_150_for_10min", "inside", "CO 150-153 ppm in readings spanning exactly 10 minutes", AT + 600 + TAIL,
             [span(AT, 600, co_ppm=Noisy(151, 0.8, 150, 153))], [spanned(c, "critical", AT, 600, SLOW_S)],
             sample_s=SLOW_S),
        home("co_150_for_9min", "outside", "CO 150-153 ppm for 9 minutes", AT + 540 + TAIL,
             [span(AT, 540, co_ppm=Noisy(151, 0.8, 150, 153))], absent=[c], sample_s=SLOW_S),
        home("co_149_9_for_15min", "outside", "CO up to 149.9 ppm (below 150) for 15 minutes", AT + 900 + TAIL,
             [span(AT, 900, co_ppm=Noisy(149, 0.8, 145, 149.9))], absent=[c], sample_s=SLOW_S),
        home("co_70_for_60min", "inside", "CO 70-73 ppm in readings spanning exactly 60 minutes", AT + 3600 + TAIL,
             [span(AT, 3600, co_ppm=Noisy(71, 0.6, 70, 73))], [spanned(c, "critical", AT, 3600, SLOW_S)],
             sample_s=SLOW_S),
        home("co_70_for_59min", "outside", "CO 70-73 ppm for 59 minutes", AT + 3540 + TAIL,
             [span(AT, 3540, co_ppm=Noisy(71, 0.6, 70, 73))], absent=[c], sample_s=SLOW_S),
        home("co_69_9_for_90min", "outside", "CO up to 69.9 ppm (below 70) for 90 minutes", AT + 5400 + TAIL,
             [span(AT, 5400, co_ppm=Noisy(68, 1, 60, 69.9))], absent=[c], sample_s=SLOW_S),
        home("co_400_for_4min", "inside", "CO 400-420 ppm in readings spanning exactly 4 minutes", AT + 240 + TAIL,
             [span(AT, 240, co_ppm=Noisy(405, 3, 400, 420))], [spanned(c, "critical", AT, 240, SLOW_S)],
             sample_s=SLOW_S),
        home("co_400_for_3min", "outside", "CO 400-420 ppm for 3 minutes", AT + 180 + TAIL,
             [span(AT, 180, co_ppm=Noisy(405, 3, 400, 420))], absent=[c], sample_s=SLOW_S),
        home("co_30_for_4h", "confounder", "a gas cooker and a poor flue: CO 20-30 ppm for 4 hours", AT + 14400 + TAIL,
             [span(AT, 14400, co_ppm=Noisy(27, 1.5, 20, 30))], absent=[c], sample_s=SLOW_S),
    ]


def gas_leak() -> list[Scenario]:
    g = "gas_leak"
    return [
        home("gas_leak", "positive", "a gas leak at 12-25 % LEL for 3 minutes", 720,
             [span(AT, 180, gas_lel=Noisy(18, 2, 12, 25))], [spanned(g, "critical", AT, 30, FAST_S)]),
        home("gas_10_for_30s", "inside", "gas at exactly 10.0 % LEL in readings spanning exactly 30 s", 720,
             [span(AT, 30, gas_lel=Const(10))], [spanned(g, "critical", AT, 30, FAST_S)]),
        home("gas_9_9_for_10min", "outside", "gas up to 9.9 % LEL (below 10) for 10 minutes", AT + 600 + TAIL,
             [span(AT, 600, gas_lel=Noisy(9.5, 0.3, 8.5, 9.9))], absent=[g]),
        home("gas_10_for_25s", "outside", "gas at 10.0 % LEL for 25 s", 720, [span(AT, 25, gas_lel=Const(10))],
             absent=[g]),
        home("gas_whiff_10s", "confounder", "a hob turned on without a flame for 10 s: 11-18 % LEL", 720,
             [span(AT, 10, gas_lel=Noisy(14, 1, 11, 18))], absent=[g]),
    ]


def water_leak() -> list[Scenario]:
    w = "water_leak"
    return [
        home("water_leak", "positive", "the probe is wet for 25 minutes: one alert", AT + 1500 + TAIL,
             [span(AT, 1500, water_leak=WET)], [spanned(w, "high", AT, 60, FAST_S)]),
        home("water_leak_60s", "inside", "the probe is wet in readings spanning exactly 60 s", 720,
             [span(AT, 60, water_leak=WET)], [spanned(w, "high", AT, 60, FAST_S)]),
        home("water_leak_50s", "outside", "the probe is wet for 50 s", 720, [span(AT, 50, water_leak=WET)],
             absent=[w]),
        home("mop_splash", "confounder", "a splash while mopping wets the probe for 20 s", 720,
             [span(AT, 20, water_leak=WET)], absent=[w]),
        home("water_leak_two_episodes", "positive",
             "wet for 2 minutes, dry for 8 (clears after 5), wet for 2 more: two alerts", 1320,
             [span(AT, 120, water_leak=WET), span(800, 120, water_leak=WET)],
             [spanned(w, "high", AT, 60, FAST_S), spanned(w, "high", 800, 60, FAST_S)]),
        home("water_leak_flicker", "positive",
             "a probe at the edge of a puddle: wet 90 s, dry 25 s, five times: one episode, one alert", 1140,
             [span(AT + 120 * k, 90, water_leak=WET) for k in range(5)], [spanned(w, "high", AT, 60, FAST_S)]),
        home("water_leak_out_of_order", "positive",
             "wet for 3 minutes, each 2 minutes of messages delivered newest first", 720,
             [span(AT, 180, water_leak=WET)], [spanned(w, "high", AT, 60, FAST_S)], delivery=ReversedBlocks(120)),
    ]


def freeze_risk() -> list[Scenario]:
    f = "freeze_risk"
    return [
        home("freeze_risk", "positive", "the heating fails: 1-5 °C for 45 minutes", AT + 2700 + TAIL,
             [span(AT, 2700, temperature=Noisy(3, 0.5, 1, 5))], [spanned(f, "medium", AT, 1800, SLOW_S)],
             sample_s=SLOW_S),
        home("freeze_5_for_30min", "inside", "exactly 5.0 °C in readings spanning exactly 30 minutes",
             AT + 1800 + TAIL, [span(AT, 1800, temperature=Const(5))], [spanned(f, "medium", AT, 1800, SLOW_S)],
             sample_s=SLOW_S),
        home("freeze_5_1_for_45min", "outside", "5.1 °C (above 5) for 45 minutes", AT + 2700 + TAIL,
             [span(AT, 2700, temperature=Const(5.1))], absent=[f], sample_s=SLOW_S),
        home("freeze_5_for_29min", "outside", "5.0 °C for 29 minutes", AT + 1740 + TAIL,
             [span(AT, 1740, temperature=Const(5))], absent=[f], sample_s=SLOW_S),
        home("freeze_minus_7", "positive", "an unheated basement at -9 to -7 °C for 35 minutes: high",
             AT + 2100 + TAIL, [span(AT, 2100, temperature=Noisy(-7.5, 0.4, -9, -7))],
             [spanned(f, "high", AT, 1800, SLOW_S)], sample_s=SLOW_S),
        home("freeze_minus_6_7_for_30min", "inside", "exactly -6.7 °C (20 °F) for exactly 30 minutes: high",
             AT + 1800 + TAIL, [span(AT, 1800, temperature=Const(-6.7))], [spanned(f, "high", AT, 1800, SLOW_S)],
             sample_s=SLOW_S),
        home("freeze_minus_6_6_for_30min", "outside", "-6.6 °C (above -6.7) for 30 minutes: medium, not high",
             AT + 1800 + TAIL, [span(AT, 1800, temperature=Const(-6.6))], [spanned(f, "medium", AT, 1800, SLOW_S)],
             sample_s=SLOW_S),
        home("window_airing", "confounder", "windows open on a winter day: 1-5 °C for 15 minutes", AT + 900 + TAIL,
             [span(AT, 900, temperature=Noisy(3, 0.5, 1, 5))], absent=[f], sample_s=SLOW_S),
    ]


def overheat() -> list[Scenario]:
    o = "overheat"
    return [
        home("overheat_attic", "positive", "an attic heat detector at 58-72 °C for 2 minutes, no smoke", 720,
             [span(AT, 120, temperature=Noisy(64, 2, 58, 72))], [spanned(o, "critical", AT, 30, FAST_S)]),
        home("overheat_57_for_30s", "inside", "exactly 57.0 °C in readings spanning exactly 30 s", 720,
             [span(AT, 30, temperature=Const(57))], [spanned(o, "critical", AT, 30, FAST_S)]),
        home("overheat_56_9_for_10min", "outside", "up to 56.9 °C (below 57) for 10 minutes", AT + 600 + TAIL,
             [span(AT, 600, temperature=Noisy(56, 0.4, 54, 56.9))], absent=[o]),
        home("overheat_57_for_25s", "outside", "57.0 °C for 25 s", 720, [span(AT, 25, temperature=Const(57))],
             absent=[o]),
        home("cooking_heat", "confounder", "a sensor above the oven at 42-54 °C for 15 minutes", AT + 900 + TAIL,
             [span(AT, 900, temperature=Noisy(48, 2, 42, 54))], absent=[o, "smoke"]),
    ]


def electrical_arcing() -> list[Scenario]:
    a = "electrical_arcing"
    return [
        home("arcing_wiring_fault", "positive", "a loose connection arcs 7 times over 17 minutes: one alert", 1560,
             [onwards(0, arc_events=Pulses({180: 1, 300: 1, 420: 1, 600: 2, 900: 1, 1200: 1}))],
             [spanned(a, "high", 180, 240, SLOW_S)], sample_s=SLOW_S),
        home("arcing_3_in_10min", "inside", "3 arcing events within 9.5 minutes", 1140,
             [onwards(0, arc_events=Pulses({180: 1, 480: 1, 750: 1}))], [spanned(a, "high", 180, 570, SLOW_S)],
             sample_s=SLOW_S),
        home("arcing_2_in_10min", "outside", "2 arcing events within 5 minutes", 900,
             [onwards(0, arc_events=Pulses({180: 1, 480: 1}))], absent=[a], sample_s=SLOW_S),
        home("arcing_3_in_11min", "outside", "3 arcing events spread over 11 minutes: never 3 within 10", 1200,
             [onwards(0, arc_events=Pulses({180: 1, 480: 1, 840: 1}))], absent=[a], sample_s=SLOW_S),
        home("arcing_burst", "positive", "one reading reports 3 arcing events", 720,
             [onwards(0, arc_events=Pulses({300: 3}))], [instant(a, "high", 300, SLOW_S)], sample_s=SLOW_S),
        home("arcing_redelivered", "confounder",
             "2 arcing events in a message the broker delivers twice (QoS 1): still 2 events, not 4", 720,
             [onwards(0, arc_events=Pulses({180: 2}))], absent=[a], sample_s=SLOW_S,
             delivery=Redelivered((180,))),
    ]


def hub_battery() -> list[Scenario]:
    b = "low_battery"
    return [
        home("low_battery_drains_to_10", "inside", "a home hub's battery drains 14 → 13 → 12 → 11 → 10 %", 1080,
             [between(0, 180, battery=Const(14)), between(180, 360, battery=Const(13)),
              between(360, 540, battery=Const(12)), between(540, 720, battery=Const(11)),
              onwards(720, battery=Const(10))], [instant(b, "low", 720, SLOW_S)], sample_s=SLOW_S),
        home("low_battery_stops_at_11", "outside", "a home hub's battery drains to 11 % and stays there", 1080,
             [between(0, 180, battery=Const(14)), between(180, 360, battery=Const(13)),
              between(360, 540, battery=Const(12)), onwards(540, battery=Const(11))], absent=[b], sample_s=SLOW_S),
    ]


def scenarios() -> list[Scenario]:
    return [*smoke(), *co(), *gas_leak(), *water_leak(), *freeze_risk(), *overheat(), *electrical_arcing(),
            *hub_battery()]
