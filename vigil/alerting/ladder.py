"""The escalation ladder: who is told when, by severity, from `VIGIL_ESCALATION` (CONTRACT §5).

Pure: the plan is a list of due times; `alerts.ladder_store` keeps it in `alert_steps`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

Recipient = Literal["member", "care_manager", "emergency_contacts"]
RECIPIENTS: tuple[str, ...] = ("member", "care_manager", "emergency_contacts")
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
AFTER_S_MAX = 86_400

_SOURCE = "VIGIL_ESCALATION"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One rung: tell `to` this long after the alert was raised."""

    to: Recipient
    after_s: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedStep:
    """A step of one alert's ladder, numbered from 1, with the moment it falls due."""

    step: int
    recipient: Recipient
    kind: Literal["ladder", "repeat"]
    due_at: datetime


Ladder = Mapping[str, tuple[Step, ...]]

DEFAULT_LADDER: dict[str, tuple[Step, ...]] = {
    "critical": (Step(to="member", after_s=0), Step(to="care_manager", after_s=60),
                 Step(to="emergency_contacts", after_s=300)),
    "high": (Step(to="member", after_s=0), Step(to="care_manager", after_s=300)),
    "medium": (Step(to="member", after_s=0), Step(to="care_manager", after_s=0)),
    "low": (Step(to="member", after_s=0),),
}


def parse_ladder(text: str | None) -> dict[str, tuple[Step, ...]]:
    """The ladders of `VIGIL_ESCALATION`; severities it leaves out keep the default.

    Anything wrong raises `ValueError` with one sentence naming it, so that start-up stops there.
    """
    if text is None or not text.strip():
        return dict(DEFAULT_LADDER)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{_SOURCE} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{_SOURCE} must be a JSON object of severity to list of steps, not {_json_kind(data)}")
    ladders = dict(DEFAULT_LADDER)
    for severity, steps in data.items():
        if severity not in SEVERITIES:
            raise ValueError(f"{_SOURCE}: severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        ladders[severity] = _parse_steps(severity, steps)
    return ladders


def _parse_steps(severity: str, steps: object) -> tuple[Step, ...]:
    if not isinstance(steps, list):
        raise ValueError(f"{_SOURCE}: the steps of {severity!r} must be a list, not {_json_kind(steps)}")
    parsed: list[Step] = []
    for number, item in enumerate(steps, start=1):
        where = f"step {number} of {severity!r}"
        if not isinstance(item, dict):
            raise ValueError(f'{_SOURCE}: {where} must be an object like {{"to": "member", "after_s": 0}}, '
                             f"not {_json_kind(item)}")
        unknown = sorted(set(item) - {"to", "after_s"})
        if unknown:
            raise ValueError(f"{_SOURCE}: {where} has an unknown key {unknown[0]!r} (only to and after_s)")
        for key in ("to", "after_s"):
            if key not in item:
                raise ValueError(f"{_SOURCE}: {where} has no {key!r}")
        to, after_s = item["to"], item["after_s"]
        if to not in RECIPIENTS:
            raise ValueError(f"{_SOURCE}: {where} sends to {to!r}, which is not one of {', '.join(RECIPIENTS)}")
        if isinstance(after_s, bool) or not isinstance(after_s, int) or not 0 <= after_s <= AFTER_S_MAX:
            raise ValueError(f"{_SOURCE}: after_s of {where} must be a whole number of seconds from 0 to "
                             f"{AFTER_S_MAX}, not {json.dumps(after_s)}")
        if any(step.to == to for step in parsed):
            raise ValueError(f"{_SOURCE}: the ladder of {severity!r} names {to!r} more than once")
        parsed.append(Step(to=to, after_s=after_s))
    return tuple(sorted(parsed, key=lambda step: step.after_s))


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true or false"
    if value is None:
        return "null"
    return "a number"


def ladder_for(severity: str, ladder: Ladder) -> tuple[Step, ...]:
    """The steps of one severity (the default ladder's when `ladder` lacks it)."""
    return ladder.get(severity, DEFAULT_LADDER.get(severity, ()))


def plan_ladder(severity: str, raised_at: datetime, ladder: Ladder) -> list[PlannedStep]:
    """The steps of a newly raised alert, numbered 1..n, each due `after_s` after `raised_at`."""
    return [
        PlannedStep(step=number, recipient=step.to, kind="ladder", due_at=raised_at + timedelta(seconds=step.after_s))
        for number, step in enumerate(ladder_for(severity, ladder), start=1)
    ]


def replan(severity: str, raised_at: datetime, ladder: Ladder, existing: Sequence[PlannedStep],
           done_recipients: set[str]) -> tuple[list[PlannedStep], list[PlannedStep]]:
    """For a severity that rose: (steps to add, pending steps whose due time moves earlier).

    A recipient already told is not told again by the new ladder; one still waiting keeps its step
    but falls due no later than the new ladder says; a recipient the old ladder lacked gets a new
    step numbered after the last existing one.
    """
    pending = {planned.recipient: planned for planned in sorted(existing, key=lambda p: p.step)
               if planned.recipient not in done_recipients}
    next_number = max((planned.step for planned in existing), default=0) + 1
    added: list[PlannedStep] = []
    moved: list[PlannedStep] = []
    for step in ladder_for(severity, ladder):
        if step.to in done_recipients:
            continue
        due_at = raised_at + timedelta(seconds=step.after_s)
        waiting = pending.get(step.to)
        if waiting is None:
            added.append(PlannedStep(step=next_number, recipient=step.to, kind="ladder", due_at=due_at))
            next_number += 1
        elif due_at < waiting.due_at:
            moved.append(replace(waiting, due_at=due_at))
    return added, moved


def next_repeat(last: PlannedStep, repeat_s: int) -> PlannedStep:
    """The re-notification of `last`'s recipient `repeat_s` after it, numbered next."""
    return PlannedStep(step=last.step + 1, recipient=last.recipient, kind="repeat",
                       due_at=last.due_at + timedelta(seconds=repeat_s))
