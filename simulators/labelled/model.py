"""Labelled scenarios as data: readings forced over a quiet baseline, and the alerts docs/rules.md says they must raise.

Offsets are event seconds after the scenario's start, which the runner places in the recent past on
a whole minute (so "whole minutes" of the 1-minute-mean rules are the scenario's own minutes). A
live scenario's offsets are wall seconds instead: it is played in real time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from simulators.devices import tidy
from simulators.labelled.shapes import Const, Draw, Noisy, Shape, Sporadic
from vigil.events import Severity
from vigil.rules.catalog import ALERT_TYPES

Kind = Literal["wearable", "home"]
# positive: the rule's typical case; inside / outside: just inside or just outside a threshold or a
# duration; confounder: something that looks like the condition and must not raise it.
Role = Literal["positive", "inside", "outside", "confounder"]
ROLES: tuple[Role, ...] = ("positive", "inside", "outside", "confounder")

HEALTH_RULES = ("tachycardia", "bradycardia", "low_spo2", "fall")
HOME_RULES = ("smoke", "co", "gas_leak", "water_leak", "freeze_risk", "overheat", "electrical_arcing")

# Replayed devices register with an hourly report interval: their readings arrive in seconds and
# then stop, and a `device_offline` after 3 hours of silence can never fall inside an evaluation.
REPLAY_REPORT_INTERVAL_S = 3600
# A replayed scenario ends this long before the wall clock, well clear of ingest's 5-minute future limit.
END_MARGIN_S = 300
_FOREVER_S = 10**9

# What a device reads on a quiet day, before a scenario forces anything.
BASELINES: dict[Kind, Mapping[str, Shape]] = {
    "wearable": {
        "heart_rate": Noisy(72, 2.5, 60, 85),
        "spo2": Noisy(97, 0.8, 95, 99),
        "skin_temp": Noisy(33.3, 0.15),
        "steps": Sporadic(0.08, 1, 8),
        "worn": Const(1),
        "fall": Const(0),
        "battery": Const(80),
    },
    "home": {
        "temperature": Noisy(21, 0.15, 19, 23),
        "humidity": Noisy(45, 1.5, 35, 55),
        "co_ppm": Noisy(1.5, 1.0, 0, 5),
        "gas_lel": Const(0),
        "smoke": Const(0),
        "water_leak": Const(0),
        "arc_events": Const(0),
        "motion": Sporadic(0.05, 1, 1),
        "door_open": Const(0),
        "battery": Const(90),
    },
}


@dataclass(frozen=True, slots=True)
class Segment:
    """Values forced on the samples with `start_s <= offset < end_s`; a later segment wins over an earlier one."""

    start_s: int
    end_s: int
    values: Mapping[str, Shape]


def minutes(first: int, count: int, **values: Shape) -> Segment:
    """Whole minutes `first` .. `first + count - 1` of the scenario."""
    return Segment(first * 60, (first + count) * 60, values)


def span(at_s: int, span_s: int, **values: Shape) -> Segment:
    """Readings from `at_s` through `at_s + span_s` inclusive: readings spanning exactly `span_s`."""
    return Segment(at_s, at_s + span_s + 1, values)


def between(start_s: int, end_s: int, **values: Shape) -> Segment:
    """Samples from `start_s` up to, not including, `end_s`."""
    return Segment(start_s, end_s, values)


def onwards(start_s: int, **values: Shape) -> Segment:
    """Samples from `start_s` to the end of the scenario."""
    return Segment(start_s, _FOREVER_S, values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """One alert the scenario must raise: its type, severity and `triggered_at`, and the readings that make it.

    `first_s`..`last_s` bound the readings the condition rests on; the latest of them completes it,
    and detection latency runs from the broker's acknowledgement of the message carrying it (plus
    `delay_s` for a condition that needs wall-clock silence) to the alert's `raised_at`.
    """

    type: str
    severity: Severity
    at_s: int
    first_s: int
    last_s: int
    early_s: float
    late_s: float
    delay_s: float = 0.0

    def accepts(self, offset_s: float) -> bool:
        """Whether a `triggered_at` this many seconds after the start is on time."""
        return self.at_s - self.early_s <= offset_s <= self.at_s + self.late_s


def sustained(alert_type: str, severity: Severity, first_minute: int, count: int) -> Expected:
    """A 1-minute-mean condition over `count` whole minutes: met when the last of them ends."""
    at_s = (first_minute + count) * 60
    return Expected(type=alert_type, severity=severity, at_s=at_s, first_s=first_minute * 60, last_s=at_s - 1,
                    early_s=60, late_s=60)


def spanned(alert_type: str, severity: Severity, at_s: int, span_s: int, sample_s: int) -> Expected:
    """A condition over readings spanning `span_s` from `at_s`: met at the reading `span_s` later."""
    tolerance = max(2 * sample_s, 15)
    return Expected(type=alert_type, severity=severity, at_s=at_s + span_s, first_s=at_s, last_s=at_s + span_s,
                    early_s=tolerance, late_s=tolerance)


def instant(alert_type: str, severity: Severity, at_s: int, sample_s: int) -> Expected:
    """A condition one reading meets (`battery` ≤ 10)."""
    return spanned(alert_type, severity, at_s, 0, sample_s)


@dataclass(frozen=True, slots=True)
class InOrder:
    """Messages delivered in event-time order, as a device that is online sends them."""

    def order(self, message_starts: list[int]) -> list[int]:
        return list(range(len(message_starts)))


@dataclass(frozen=True, slots=True)
class ReversedBlocks:
    """Each `block_s` of event time delivered newest message first: out of order by less than `block_s`."""

    block_s: int = 120

    def order(self, message_starts: list[int]) -> list[int]:
        blocks: dict[int, list[int]] = {}
        for index, first_s in enumerate(message_starts):
            blocks.setdefault(first_s // self.block_s, []).append(index)
        return [index for key in sorted(blocks) for index in reversed(blocks[key])]


@dataclass(frozen=True, slots=True)
class Redelivered:
    """The messages holding the samples at `at_s` arrive again `after` messages later (QoS 1 after a reconnect)."""

    at_s: tuple[int, ...]
    after: int = 2

    def order(self, message_starts: list[int]) -> list[int]:
        order = list(range(len(message_starts)))
        for offset in self.at_s:
            index = max(i for i, first_s in enumerate(message_starts) if first_s <= offset)
            position = order.index(index) + 1 + self.after
            order.insert(min(position, len(order)), index)
        return order


Delivery = InOrder | ReversedBlocks | Redelivered


@dataclass(frozen=True, slots=True)
class Sample:
    """Every reading a device takes at one moment."""

    t_s: int
    values: dict[str, int | float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A labelled scenario: one device of `kind`, its readings, and the alerts it must (and must not) raise."""

    name: str
    kind: Kind
    role: Role
    summary: str
    duration_s: int
    sample_s: int
    message_s: int
    segments: tuple[Segment, ...] = ()
    expected: tuple[Expected, ...] = ()
    # Alert types the scenario is about and must not raise; any alert not in `expected` is false anyway.
    absent: tuple[str, ...] = ()
    delivery: Delivery = field(default_factory=InOrder)
    end_margin_s: int = END_MARGIN_S
    # Played in real time: offsets are wall seconds, and the alerts are read `observe_s` after the start.
    live: bool = False
    observe_s: int = 0
    sample_times: tuple[int, ...] | None = None
    report_interval_s: int = REPLAY_REPORT_INTERVAL_S

    @property
    def rules(self) -> tuple[str, ...]:
        """The alert types this scenario exercises, positively or negatively, in docs/rules.md order."""
        named = {e.type for e in self.expected} | set(self.absent)
        return tuple(t for t in ALERT_TYPES if t in named)

    def times(self) -> list[int]:
        """Offsets of the samples."""
        if self.sample_times is not None:
            return list(self.sample_times)
        return list(range(0, self.duration_s, self.sample_s))

    def samples(self, seed: int = 0) -> list[Sample]:
        """The readings, the same for the same seed; the seed changes only the noise, never a label."""
        layers = (Segment(0, self.duration_s, BASELINES[self.kind]), *self.segments)
        samples = []
        for t in self.times():
            raw: dict[str, float | None] = {}
            for segment in layers:
                if not segment.start_s <= t < segment.end_s:
                    continue
                length = min(segment.end_s, self.duration_s) - segment.start_s
                for metric, shape in segment.values.items():
                    draw = Draw(f"{seed}:{self.name}:{metric}", t, t - segment.start_s, length, self.sample_s)
                    raw[metric] = shape.value(draw)
            samples.append(Sample(t, tidy({m: v for m, v in raw.items() if v is not None})))
        return samples

    def start_for(self, now: datetime) -> datetime:
        """Where offset 0 falls: on a whole minute in the past for a replay, just ahead of now when live."""
        if self.live:
            return now.replace(microsecond=0) + timedelta(seconds=2)
        start = now - timedelta(seconds=self.duration_s + self.end_margin_s)
        return start.replace(second=0, microsecond=0)
