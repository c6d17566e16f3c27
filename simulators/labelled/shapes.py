"""Value shapes: what a labelled scenario forces a metric to read, sample by sample, reproducibly.

A shape gives one raw value per sample (or None: the device sent no reading of that metric); the
scenario then clamps and rounds it as the device would. Noise comes from a generator seeded by the
scenario, the metric and the sample's offset, so a sample reads the same on every run and in every
order it is generated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Draw:
    """Where a sample sits: its offset in the scenario and in the segment that forces it."""

    key: str  # scenario seed and metric
    t_s: int  # event seconds after the scenario's start
    since_s: int  # seconds after the segment's start
    length_s: int  # the segment's length
    sample_s: int

    def rng(self, salt: str = "") -> random.Random:
        return random.Random(f"{self.key}:{self.t_s}:{salt}")


class Shape(Protocol):
    def value(self, draw: Draw) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Const:
    """Always this value."""

    level: float

    def value(self, draw: Draw) -> float | None:
        return self.level


@dataclass(frozen=True, slots=True)
class Absent:
    """No reading of the metric at all (a sensor gap, an optical sensor off the wrist)."""

    def value(self, draw: Draw) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class Noisy:
    """Gaussian noise around `mean`, kept within [`low`, `high`]: a boundary case stays on its side."""

    mean: float
    sd: float
    low: float = -math.inf
    high: float = math.inf

    def value(self, draw: Draw) -> float | None:
        return min(max(draw.rng().gauss(self.mean, self.sd), self.low), self.high)


@dataclass(frozen=True, slots=True)
class Balanced:
    """Whole-number noise of up to ±`spread` that cancels in pairs, so each whole minute's mean is exactly `mean`.

    Needs an even number of samples per minute (a sample every 5, 10, 15 or 30 s) and a segment of
    whole minutes: then the boundary cases of the 1-minute-mean rules sit exactly on their mark.
    """

    mean: int
    spread: int

    def value(self, draw: Draw) -> float | None:
        slot = (draw.t_s % 60) // draw.sample_s
        minute_key = f"{draw.key}:{draw.t_s // 60}:{slot // 2}"
        offset = random.Random(minute_key).randint(-self.spread, self.spread)
        return self.mean + (offset if slot % 2 == 0 else -offset)


@dataclass(frozen=True, slots=True)
class Linear:
    """A straight line from `first` at the segment's start to `last` at its end, with optional noise."""

    first: float
    last: float
    sd: float = 0.0

    def value(self, draw: Draw) -> float | None:
        fraction = draw.since_s / draw.length_s if draw.length_s else 1.0
        level = self.first + (self.last - self.first) * min(fraction, 1.0)
        return level + (draw.rng().gauss(0, self.sd) if self.sd else 0.0)


@dataclass(frozen=True, slots=True)
class Pulses:
    """`at[offset]` at those scenario offsets, `otherwise` elsewhere: counted events, a single flag."""

    at: Mapping[int, float]
    otherwise: float = 0.0

    def value(self, draw: Draw) -> float | None:
        return self.at.get(draw.t_s, self.otherwise)


@dataclass(frozen=True, slots=True)
class Sporadic:
    """Zero mostly; with probability `chance` a whole number from `low` to `high` (a few steps, a motion)."""

    chance: float
    low: int
    high: int

    def value(self, draw: Draw) -> float | None:
        rng = draw.rng()
        return float(rng.randint(self.low, self.high)) if rng.random() < self.chance else 0.0
