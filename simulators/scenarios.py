"""Scripted incidents as data: which values a scenario forces on a device's normal signal, and when."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Kind = Literal["wearable", "home"]


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always this value."""

    value: float

    def draw(self, rng: random.Random, normal: float | None, elapsed_s: float) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Uniform:
    """A value drawn afresh for each sample, like a sensor reading a steady condition."""

    low: float
    high: float

    def draw(self, rng: random.Random, normal: float | None, elapsed_s: float) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class Ramp:
    """The normal value shifted by `shift`, then by `per_min` for each minute into the phase."""

    per_min: float
    shift: float = 0.0

    def draw(self, rng: random.Random, normal: float | None, elapsed_s: float) -> float:
        return (normal or 0.0) + self.shift + self.per_min * elapsed_s / 60


Value = Fixed | Uniform | Ramp


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """Values forced from `offset_s` for `duration_s`; a zero duration forces only the first sample."""

    offset_s: float
    duration_s: float
    values: Mapping[str, Value]

    def covers(self, elapsed_s: float, interval_s: float) -> bool:
        since = elapsed_s - self.offset_s
        return 0 <= since < (self.duration_s or interval_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A named incident for one kind of device, as phases over the scenario's own time."""

    name: str
    kind: Kind
    summary: str
    phases: tuple[Phase, ...]

    @property
    def duration_s(self) -> float:
        return max(p.offset_s + p.duration_s for p in self.phases)

    def overlay(self, values: dict[str, float], *, elapsed_s: float, interval_s: float,
                rng: random.Random) -> dict[str, float]:
        """The sample `elapsed_s` into the scenario, with the forced values in place of the normal ones."""
        for phase in self.phases:
            if phase.covers(elapsed_s, interval_s):
                since = elapsed_s - phase.offset_s
                for metric, value in phase.values.items():
                    values[metric] = value.draw(rng, values.get(metric), since)
        return values


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(name="leak", kind="home", summary="the water probe is wet for 25 minutes",
                 phases=(Phase(offset_s=0, duration_s=25 * 60, values={"water_leak": Fixed(1)}),)),
        Scenario(name="tachycardia", kind="wearable",
                 summary="heart rate 130-140 at rest, worn, for 15 minutes",
                 phases=(Phase(offset_s=0, duration_s=15 * 60,
                               values={"heart_rate": Uniform(130, 140), "steps": Fixed(0), "worn": Fixed(1)}),)),
        Scenario(name="fall", kind="wearable",
                 summary="the fall detector fires, then the wearer does not move for 8 minutes",
                 phases=(Phase(offset_s=0, duration_s=0, values={"fall": Fixed(1)}),
                         Phase(offset_s=0, duration_s=8 * 60, values={"steps": Fixed(0), "worn": Fixed(1)}))),
        Scenario(name="co", kind="home", summary="carbon monoxide around 180 ppm for 15 minutes",
                 phases=(Phase(offset_s=0, duration_s=15 * 60, values={"co_ppm": Uniform(170, 190)}),)),
        Scenario(name="smoke", kind="home",
                 summary="the smoke alarm sounds for 3 minutes as the room heats up, then it cools down",
                 phases=(Phase(offset_s=0, duration_s=3 * 60, values={"smoke": Fixed(1), "temperature": Ramp(6)}),
                         Phase(offset_s=3 * 60, duration_s=10 * 60, values={"temperature": Ramp(-1.8, 18)}))),
    )
}

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_INJECTION_RE = re.compile(r"^(?P<name>[a-z_]+)(?:@(?P<offset>[0-9.]+[smhd]?))?(?::(?P<device>\d+))?$")


def parse_duration(text: str) -> float:
    """Seconds in `90`, `90s`, `15m`, `2h` or `1d`."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration; write it like 90s, 15m or 2h")
    return float(match.group(1)) * _UNIT_S[match.group(2)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Injection:
    """A scenario laid over one device, `offset_s` after the simulated clock starts."""

    scenario: Scenario
    offset_s: float = 60.0
    device: int = 1  # 1-based, among the fleet's devices of the scenario's kind

    @classmethod
    def parse(cls, text: str) -> Injection:
        """Read `NAME[@OFFSET][:DEVICE]`, e.g. `leak`, `co@10m` or `fall@2m:3`."""
        match = _INJECTION_RE.match(text.strip())
        if not match:
            raise ValueError(f"{text!r} is not a scenario; write NAME[@OFFSET][:DEVICE], e.g. fall@2m:3")
        name = match.group("name")
        if name not in SCENARIOS:
            raise ValueError(f"{name!r} is not a scenario; known: {', '.join(SCENARIOS)}")
        offset = match.group("offset")
        device = int(match.group("device") or 1)
        if device < 1:
            raise ValueError(f"{text!r}: devices are numbered from 1")
        return cls(scenario=SCENARIOS[name], offset_s=parse_duration(offset) if offset else 60.0, device=device)
