"""Story-telling helpers for the rule tests: a fixed clock and reading builders.

Minute 0 of every story is 2026-11-22T02:00:00Z, a whole minute; the wall clock stands still a day
later, so `detected_at_ms` is always `NOW_MS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vigil.events import AlertChanged
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.lateness import Judgement, judge_device
from vigil.rules.spec import Rule
from vigil.rules.state import DeviceState

T0_MS = 1_795_312_800_000
NOW_MS = T0_MS + 86_400_000
MINUTE_MS = 60_000
DEVICE, MEMBER = "dev-000123", "mem-42"
RULES = {rule.type: rule for rule in DEFAULT_RULES}

Reading = tuple[int, str, float]


def at(minute: float = 0, second: float = 0) -> int:
    """Epoch ms of second `second` of minute `minute` of the story."""
    return round(T0_MS + minute * MINUTE_MS + second * 1000)


def minutely(metric: str, *values: float | list[float] | None, start: int = 0, second: float = 5) -> list[Reading]:
    """One entry per minute from `start`: a value (one reading), a list (several), or None (nothing)."""
    readings = []
    for offset, entry in enumerate(values):
        if entry is None:
            continue
        entry = entry if isinstance(entry, list) else [entry]
        for i, value in enumerate(entry):
            readings.append((at(start + offset, second + 50 * i / len(entry)), metric, float(value)))
    return readings


def steady(metric: str, value: float, *, minutes: int, start: int = 0, second: float = 5) -> list[Reading]:
    """The same value once a minute for `minutes` minutes."""
    return minutely(metric, *[value] * minutes, start=start, second=second)


def every(metric: str, value: float, *, from_s: float, to_s: float, step_s: float = 10) -> list[Reading]:
    """A reading every `step_s` from second `from_s` of the story to `to_s`, both included."""
    readings, s = [], from_s
    while s <= to_s + 1e-9:
        readings.append((at(0, s), metric, float(value)))
        s += step_s
    return readings


def tick(minute: float, second: float = 0) -> list[Reading]:
    """A reading no rule judges (battery well charged): it only moves the device's time on."""
    return [(at(minute, second), "battery", 80.0)]


def rules_named(*names: str) -> tuple[Rule, ...]:
    return tuple(RULES[name] for name in names) if names else DEFAULT_RULES


def judge(readings: Iterable[Reading], *names: str, state: DeviceState | None = None,
          rules: Sequence[Rule] | None = None, **options) -> Judgement:
    """Judge readings in one call with the named default rules (all of them when none is named)."""
    return judge_device(state if state is not None else DeviceState(), list(readings),
                        rules=rules if rules is not None else rules_named(*names),
                        device_id=DEVICE, member_id=MEMBER, now_ms=NOW_MS, **options)


def moment(change: AlertChanged) -> int:
    return change.cleared_at_ms if change.change == "cleared" else change.triggered_at_ms


def story(changes: Iterable[AlertChanged], *, updates: bool = False) -> list[tuple]:
    """The alert changes as (change, type, severity, the moment that made it)."""
    return [(c.change, c.type, c.severity, moment(c)) for c in changes if updates or c.change != "updated"]


def raised_at(changes: Iterable[AlertChanged]) -> list[tuple[str, int]]:
    """Just the raises: (severity, triggered_at_ms)."""
    return [(c.severity, c.triggered_at_ms) for c in changes if c.change == "raised"]
