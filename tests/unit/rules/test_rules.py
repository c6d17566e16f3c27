"""The default rules of docs/rules.md at their boundaries: tachycardia (sustained 1-minute means) and
water_leak (a condition over a span of readings), judged in event time with a fixed clock.

The other rules are in test_rules_health.py and test_rules_home.py; lateness, care plans and
incidents in their own files.
"""

from __future__ import annotations

import random

import pytest

from vigil.events import AlertChanged
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.lateness import judge_device
from vigil.rules.state import DeviceState

# Minute 0 of every story: 2026-11-22T02:00:00Z, a whole minute. The wall clock stands still later.
T0_MS = 1_795_312_800_000
NOW_MS = T0_MS + 86_400_000
MINUTE_MS = 60_000
DEVICE, MEMBER = "wb-000123", "mem-42"
RULES = {rule.type: rule for rule in DEFAULT_RULES}

Reading = tuple[int, str, float]


def minute(m: float, second: float = 0) -> int:
    """Epoch ms of second `second` of minute `m` of the story."""
    return int(T0_MS + m * MINUTE_MS + second * 1000)


def heart(*bpm: float | list[float] | None, start: int = 0, steps: float = 0, worn: int | None = None) -> list[Reading]:
    """One entry per minute from `start`: a rate (one reading), a list (several), or None (nothing)."""
    readings = []
    for offset, rates in enumerate(bpm):
        m = start + offset
        if rates is None:
            continue
        rates = rates if isinstance(rates, list) else [rates]
        for i, rate in enumerate(rates):
            readings.append((minute(m, 5 + 50 * i / len(rates)), "heart_rate", float(rate)))
        if steps:
            readings.append((minute(m, 30), "steps", float(steps)))
        if worn is not None:
            readings.append((minute(m, 1), "worn", float(worn)))
    return readings


def one(ts_ms: int, metric: str, value: float) -> list[Reading]:
    return [(ts_ms, metric, float(value))]


def tick(m: int) -> list[Reading]:
    """A reading from minute m that no rule looks at: it only closes the minutes before it."""
    return [(minute(m), "battery", 80.0)]


def wet(*seconds: float) -> list[Reading]:
    return [(minute(0, s), "water_leak", 1.0) for s in seconds]


def dry(*seconds: float) -> list[Reading]:
    return [(minute(0, s), "water_leak", 0.0) for s in seconds]


def judge(readings: list[Reading], state: DeviceState | None = None, rule: str | None = None) -> list[AlertChanged]:
    rules = [RULES[rule]] if rule else list(DEFAULT_RULES)
    return judge_device(state if state is not None else DeviceState(), readings, rules=rules,
                        device_id=DEVICE, member_id=MEMBER, now_ms=NOW_MS).alerts


def story(changes: list[AlertChanged]) -> list[tuple]:
    """The alert changes as (change, type, the moment that made it); evidence refreshes left out."""
    return [(c.change, c.type, c.cleared_at_ms if c.change == "cleared" else c.triggered_at_ms) for c in changes
            if c.change != "updated"]


# -- tachycardia: raising -------------------------------------------------------------------------

TEN = 10


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(heart(*[121] * TEN) + tick(10), [minute(10)], id="10 minutes at 121 raise at the end of the 10th"),
        pytest.param(heart(*[121] * 9) + tick(9), [], id="9 minutes at 121 do not"),
        pytest.param(heart(*[121] * 9) + tick(12), [], id="9 minutes then silence do not"),
        pytest.param(heart(*[[110, 132]] * TEN) + tick(10), [minute(10)], id="several readings, mean 121"),
        pytest.param(heart(*[[90, 140, 133]] * TEN) + tick(10), [minute(10)], id="three readings, mean 121"),
        pytest.param(heart(*[120] * TEN) + tick(10), [], id="mean exactly 120 does not count"),
        pytest.param(heart(*[[115, 125]] * TEN) + tick(10), [], id="readings averaging exactly 120"),
        pytest.param(heart(*[121] * 9, 120) + tick(10), [], id="the 10th minute at 120"),
        pytest.param(heart(*[121] * 4, 120, *[121] * 9) + tick(14), [], id="a 120 minute restarts the run"),
        pytest.param(heart(*[121] * 4, 120, *[121] * TEN) + tick(15), [minute(15)], id="10 more after it raise"),
        pytest.param(heart(*[121] * TEN), [], id="the 10th minute waits for a later reading"),
        pytest.param(heart(*[121] * TEN) + one(minute(10, 0), "heart_rate", 60.0), [minute(10)],
                     id="any later reading closes it"),
        pytest.param(heart(*[121] * 11) + tick(11), [minute(10)], id="a persisting condition raises once"),
        pytest.param(heart(*[150] * 60) + tick(60), [minute(10)], id="an hour at 150 raises once"),
    ],
)
def test_tachycardia_needs_ten_whole_minutes_above_120(readings, expected):
    changes = judge(readings, rule="tachycardia")

    assert story(changes) == [("raised", "tachycardia", at) for at in expected]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(heart(*[125] * TEN, steps=10) + tick(10), [], id="walking at 125 bpm, 100 steps"),
        pytest.param(heart(*[125] * TEN, steps=50) + tick(10), [], id="brisk walk, 500 steps"),
        pytest.param(heart(*[125] * 9, steps=10) + heart(125, start=9, steps=9) + tick(10), [minute(10)],
                     id="99 steps count as inactive"),
        pytest.param(heart(*[125] * TEN) + one(minute(3, 40), "steps", 100.0) + tick(10), [],
                     id="100 steps all in one minute"),
        pytest.param(heart(*[125] * 11) + one(minute(0, 40), "steps", 100.0) + tick(11), [minute(11)],
                     id="raises once the walk leaves the window"),
    ],
)
def test_tachycardia_ignores_the_heart_rate_of_exercise(readings, expected):
    changes = judge(readings, rule="tachycardia")

    assert story(changes) == [("raised", "tachycardia", at) for at in expected]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(heart(*[130] * 5, None, *[130] * 9, start=0) + tick(15), [], id="a minute with no reading"),
        pytest.param(heart(*[130] * 5, None, *[130] * TEN) + tick(16), [minute(16)],
                     id="10 whole minutes after the gap raise"),
        pytest.param(heart(*[130] * TEN, worn=1) + tick(10), [minute(10)], id="worn throughout"),
        pytest.param(heart(*[130] * TEN) + one(minute(10), "worn", 1.0), [minute(10)],
                     id="no worn flag at all counts as worn"),
        pytest.param(heart(*[130] * TEN, worn=1) + one(minute(6, 50), "worn", 0.0) + tick(10), [],
                     id="taken off once in minute 6"),
        pytest.param(heart(*[130] * TEN, worn=0) + tick(10), [], id="off the body throughout"),
        pytest.param(heart(*[130] * 3, worn=0) + heart(*[130] * TEN, start=3, worn=1) + tick(13), [minute(13)],
                     id="10 worn minutes after putting it on"),
    ],
)
def test_tachycardia_run_is_broken_by_silence_or_an_unworn_watch(readings, expected):
    changes = judge(readings, rule="tachycardia")

    assert story(changes) == [("raised", "tachycardia", at) for at in expected]


def test_a_raised_tachycardia_alert_says_what_made_it():
    [raised] = judge(heart(*[[125, 131]] * TEN) + tick(10), rule="tachycardia")

    assert (raised.change, raised.type, raised.severity) == ("raised", "tachycardia", "high")
    assert (raised.member_id, raised.device_id) == (MEMBER, DEVICE)
    assert raised.triggered_at_ms == minute(10)
    assert raised.detected_at_ms == NOW_MS
    assert raised.opens_incident is False
    assert raised.evidence["rule"] == "tachycardia"
    assert raised.evidence["parameters"]["tiers"] == [{"op": "above", "threshold": 120, "minutes": 10,
                                                       "severity": "high"}]
    assert raised.evidence["parameters"]["max_steps"] == 100
    assert raised.evidence["steps"] == 0
    assert raised.evidence["minutes"][0] == {"minute": "2026-11-22T02:00:00Z", "mean": 128.0, "readings": 2}
    assert len(raised.evidence["minutes"]) == 10


# -- tachycardia: clearing ------------------------------------------------------------------------

EPISODE = heart(*[130] * TEN)  # raises at the end of minute 9, i.e. at minute(10)


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(heart(*[110] * 5, start=10) + tick(15), [minute(15)], id="5 minutes at 110 clear"),
        pytest.param(heart(*[[100, 120]] * 5, start=10) + tick(15), [minute(15)], id="readings averaging 110"),
        pytest.param(heart(*[110] * 4, start=10) + tick(14), [], id="4 minutes do not"),
        pytest.param(heart(*[110] * 5, start=10), [], id="the 5th waits for a later reading"),
        pytest.param(heart(*[111] * 5, start=10) + tick(15), [], id="111 is not low enough"),
        pytest.param(heart(*[115] * 20, start=10) + tick(30), [], id="between 110 and 120 holds it open"),
        pytest.param(heart(*[100] * 4, 115, *[100] * 5, start=10) + tick(20), [minute(20)],
                     id="one 115 minute restarts the count"),
        pytest.param(heart(*[100] * 2, None, *[100] * 4, start=10) + tick(17), [], id="a silent minute breaks it"),
        pytest.param(heart(*[100] * 2, None, *[100] * 5, start=10) + tick(18), [minute(18)],
                     id="5 whole minutes after the silence clear"),
    ],
)
def test_tachycardia_clears_after_five_minutes_at_or_below_110(after, expected):
    changes = judge(EPISODE + after, rule="tachycardia")

    assert story(changes) == [("raised", "tachycardia", minute(10))] + [
        ("cleared", "tachycardia", at) for at in expected
    ]


def test_a_cleared_alert_names_the_episode_it_ends():
    raised, cleared = judge(EPISODE + heart(*[100] * 5, start=10) + tick(15), rule="tachycardia")

    assert cleared.alert_id == raised.alert_id
    assert cleared.triggered_at_ms == raised.triggered_at_ms
    assert cleared.cleared_at_ms == minute(15)
    assert [m["mean"] for m in cleared.evidence["minutes"]] == [100.0] * 5


def test_after_clearing_a_new_episode_is_a_new_alert():
    readings = EPISODE + heart(*[100] * 5, start=10) + heart(*[130] * TEN, start=15) + tick(25)

    changes = judge(readings, rule="tachycardia")

    assert story(changes) == [
        ("raised", "tachycardia", minute(10)),
        ("cleared", "tachycardia", minute(15)),
        ("raised", "tachycardia", minute(25)),
    ]
    first, cleared, second = changes
    assert first.alert_id == cleared.alert_id != second.alert_id


def test_the_same_episode_judged_twice_has_the_same_alert_id():
    # The id is the episode's natural key, so a replayed partition raises the same alert.
    first = judge(EPISODE + tick(10), rule="tachycardia")
    again = judge(EPISODE + tick(10), rule="tachycardia")

    assert first[0].alert_id == again[0].alert_id


# -- order of arrival -----------------------------------------------------------------------------

# Resting tachycardia with readings several times a minute, a walk, the watch taken off once,
# recovery, a second episode; meanwhile a leak under the sink.
SCENARIO: list[Reading] = (
    heart(*[[70, 72, 75]] * 5, steps=40)
    + heart(*[[124, 131, 128]] * 12, start=5, worn=1)
    + one(minute(8, 20), "steps", 99.0)
    + heart(*[[104, 99]] * 6, start=17)
    + heart(*[[140, 150]] * 3, start=23, worn=0)
    + heart(*[[140, 150]] * 11, start=26)
    + heart(*[[95, 100]] * 5, start=37)
    + [(minute(0, 10 * s), "water_leak", 1.0 if 3 <= s < 13 or 45 <= s < 90 else 0.0) for s in range(150)]
    + tick(43)
)


def in_order() -> list[AlertChanged]:
    return judge(sorted(SCENARIO))


def test_the_scenario_tells_the_expected_story():
    assert story(in_order()) == [
        ("raised", "water_leak", minute(0, 90)),
        ("cleared", "water_leak", minute(0, 430)),
        ("raised", "water_leak", minute(0, 510)),
        ("raised", "tachycardia", minute(15)),
        ("cleared", "water_leak", minute(20)),
        ("cleared", "tachycardia", minute(22)),
        ("raised", "tachycardia", minute(36)),
        ("cleared", "tachycardia", minute(42)),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_one_shuffled_batch_is_judged_as_if_in_order(seed):
    shuffled = SCENARIO.copy()
    random.Random(seed).shuffle(shuffled)

    assert judge(shuffled) == in_order()


@pytest.mark.parametrize("split_minute", range(44))
def test_readings_of_the_unjudged_minute_may_arrive_in_either_batch_in_any_order(split_minute):
    # Every reading before the split minute comes in the first batch; those of the split minute
    # are dealt between the two batches at random. The split minute is not judged until a later
    # minute is heard from, so where its readings land does not matter.
    rng = random.Random(split_minute)
    minutes = [r for r in SCENARIO if r[1] != "water_leak"]
    first = [r for r in minutes if r[0] < minute(split_minute)]
    first += [r for r in minutes if minute(split_minute) <= r[0] < minute(split_minute + 1) and rng.random() < 0.5]
    second = [r for r in minutes if r not in first]
    rng.shuffle(first)
    rng.shuffle(second)

    state = DeviceState()
    changes = judge(first, state, rule="tachycardia") + judge(second, state, rule="tachycardia")

    assert changes == judge(sorted(minutes), rule="tachycardia")


@pytest.mark.parametrize("cut_s", [0, 60, 89, 90, 91, 430, 509, 510, 900, 1199, 1200, 1201, 2000, 2600])
def test_span_readings_split_at_any_moment_in_shuffled_batches(cut_s):
    # A span rule judges readings as they come; each batch may be in any order, but a batch never
    # holds readings older than the one before (see the lateness note in the evaluator).
    rng = random.Random(cut_s)
    first = [r for r in SCENARIO if r[0] < minute(0, cut_s)]
    second = [r for r in SCENARIO if r[0] >= minute(0, cut_s)]
    rng.shuffle(first)
    rng.shuffle(second)

    state = DeviceState()
    assert judge(first, state) + judge(second, state) == in_order()


# -- water_leak -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(wet(0, 15, 30, 45, 59), [], id="wet for 59 s does not raise"),
        pytest.param(wet(0, 59.999), [], id="wet for 59.999 s"),
        pytest.param(wet(0, 30, 60), [minute(0, 60)], id="wet for 60 s raises"),
        pytest.param(wet(0, 60), [minute(0, 60)], id="two readings 60 s apart"),
        pytest.param(wet(0, 50, 75), [minute(0, 75)], id="raised at the reading that completed 60 s"),
        pytest.param(wet(0), [], id="one wet reading"),
        pytest.param(wet(0, 30) + dry(40) + wet(45, 60, 104), [], id="a dry reading restarts the span"),
        pytest.param(wet(0, 30) + dry(40) + wet(45, 60, 105), [minute(0, 105)], id="60 s after the restart"),
        pytest.param(dry(*range(0, 600, 10)), [], id="dry all along"),
        pytest.param(wet(*range(0, 1200, 10)), [minute(0, 60)], id="wet for 20 minutes raises once"),
    ],
)
def test_water_leak_needs_wet_readings_spanning_60_seconds(readings, expected):
    changes = judge(readings, rule="water_leak")

    assert story(changes) == [("raised", "water_leak", at) for at in expected]


LEAK = wet(0, 30, 60)  # raises at 60 s


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(dry(*range(70, 371, 30)), [minute(0, 370)], id="dry for 5 minutes clears"),
        pytest.param(dry(70, 370), [minute(0, 370)], id="two dry readings 5 minutes apart"),
        pytest.param(dry(70, 369), [], id="dry for 4:59 does not"),
        pytest.param(dry(70, 369.999), [], id="one millisecond short"),
        pytest.param(dry(70, 200) + wet(250) + dry(300, 599), [], id="a wet reading restarts the count"),
        pytest.param(dry(70, 200) + wet(250) + dry(300, 600), [minute(0, 600)], id="5 minutes after it"),
        pytest.param(wet(*range(70, 600, 30)), [], id="still wet"),
    ],
)
def test_water_leak_clears_after_dry_readings_spanning_5_minutes(after, expected):
    changes = judge(LEAK + after, rule="water_leak")

    assert story(changes) == [("raised", "water_leak", minute(0, 60))] + [
        ("cleared", "water_leak", at) for at in expected
    ]


def test_a_water_leak_alert_opens_an_incident_and_shows_its_span():
    [raised] = judge(wet(0, 20, 40, 65), rule="water_leak")

    assert (raised.type, raised.severity, raised.opens_incident) == ("water_leak", "high", True)
    assert raised.triggered_at_ms == minute(0, 65)
    assert raised.detected_at_ms == NOW_MS
    assert raised.evidence["rule"] == "water_leak"
    assert raised.evidence["parameters"] == {
        "type": "water_leak", "metric": "water_leak", "op": "at_least", "threshold": 1, "span_s": 60,
        "severity": "high", "clear_op": "at_most", "clear_threshold": 0, "clear_s": 300, "update_every_s": 900,
        "incident": {"kind": "water_damage", "covered_by": "home", "after_s": 1200, "or_with": []},
    }
    assert raised.evidence["first_at"] == "2026-11-22T02:00:00Z"
    assert raised.evidence["last_at"] == "2026-11-22T02:01:05Z"
    assert raised.evidence["span_s"] == 65
    assert raised.evidence["readings"] == 4
    assert raised.evidence["peak"] == 1


def test_a_cleared_water_leak_names_the_dry_span_and_a_new_leak_is_a_new_alert():
    changes = judge(LEAK + dry(90, 390) + wet(400, 460), rule="water_leak")

    assert story(changes) == [
        ("raised", "water_leak", minute(0, 60)),
        ("cleared", "water_leak", minute(0, 390)),
        ("raised", "water_leak", minute(0, 460)),
    ]
    raised, cleared, again = changes
    assert cleared.alert_id == raised.alert_id != again.alert_id
    assert (cleared.evidence["clear_from"], cleared.evidence["clear_to"]) == (
        "2026-11-22T02:01:30Z", "2026-11-22T02:06:30Z")
    assert cleared.opens_incident is True


def test_a_persisting_leak_across_batches_is_still_one_alert():
    state = DeviceState()

    changes = [c for start in range(0, 1200, 60) for c in judge(wet(start, start + 30), state, rule="water_leak")]

    assert story(changes) == [("raised", "water_leak", minute(0, 60))]
