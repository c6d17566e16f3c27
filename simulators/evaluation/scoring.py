"""Scoring a run against its labels: per rule, true and false positives, misses, precision, recall, latency.

Pure: the runner hands in what each scenario's device raised and when its messages were
acknowledged; nothing here touches the network or the clock.

Matching, per scenario and alert type: an expected alert is met (TP) by an alert of its type with
its severity and a `triggered_at` within tolerance. An expectation left over takes the nearest
alert of its type that is left over, if any, and is a miss (FN) with the reason (wrong severity,
wrong time); it is not also counted false. Alerts left over after that are false positives: of a
type the scenario does not expect, or a second alert for an episode that should have raised one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from simulators.labelled.model import Expected
from vigil.rules.catalog import ALERT_TYPES

Outcome = Literal["tp", "fp", "fn"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SeenAlert:
    """An alert as the API reported it for a scenario's device."""

    type: str
    severity: str
    triggered_at: datetime
    raised_at: datetime
    alert_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation:
    """One scenario as it ran: its labels, where offset 0 fell, what was raised, when its readings were acked.

    `completed_at[i]` is the wall time (epoch seconds) from which detection of `expected[i]` is
    timed: the broker's acknowledgement of the message carrying the completing reading (the last
    acknowledged of those carrying the condition's readings) plus the label's `delay_s`; None when
    a message carrying them was never acknowledged.
    """

    scenario: str
    role: str
    rules: tuple[str, ...]
    expected: tuple[Expected, ...]
    start: datetime
    alerts: tuple[SeenAlert, ...]
    completed_at: tuple[float | None, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One matched, missed or false alert of one scenario."""

    scenario: str
    type: str
    outcome: Outcome
    expected: str
    seen: str
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleScore:
    """How one rule did over the scenarios that exercise it or that it alerted on."""

    type: str
    scenarios: int
    expected: int
    tp: int
    fp: int
    fn: int
    latencies_ms: tuple[float, ...] = ()

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); None when the rule raised nothing."""
        raised = self.tp + self.fp
        return self.tp / raised if raised else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); None when nothing was expected of the rule."""
        wanted = self.tp + self.fn
        return self.tp / wanted if wanted else None

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latencies_ms, 95)

    def passes(self, min_precision: float, min_recall: float) -> bool:
        """Whether both figures reach their floors; a figure with nothing to measure passes."""
        return all(value is None or value >= floor
                   for value, floor in ((self.precision, min_precision), (self.recall, min_recall)))


@dataclass(frozen=True, slots=True)
class Score:
    """A whole run: per-rule figures in docs/rules.md order and every verdict."""

    rules: tuple[RuleScore, ...]
    verdicts: tuple[Verdict, ...] = field(default=())

    def failing(self, min_precision: float, min_recall: float) -> list[RuleScore]:
        return [r for r in self.rules if not r.passes(min_precision, min_recall)]

    @property
    def failures(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.outcome != "tp"]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _offset_s(observation: Observation, moment: datetime) -> float:
    return (moment - observation.start).total_seconds()


def _clock(seconds: float) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{sign}{rest // 60}:{rest % 60:02d}"


def describe_expected(label: Expected) -> str:
    window = f"{_clock(label.at_s - label.early_s)}..{_clock(label.at_s + label.late_s)}"
    return f"{label.type}/{label.severity} at {_clock(label.at_s)} ({window})"


def describe_seen(observation: Observation, alert: SeenAlert) -> str:
    return f"{alert.type}/{alert.severity} at {_clock(_offset_s(observation, alert.triggered_at))}"


def _why_not(observation: Observation, label: Expected, alert: SeenAlert) -> str:
    reasons = []
    if alert.severity != label.severity:
        reasons.append(f"severity {alert.severity}, not {label.severity}")
    off = _offset_s(observation, alert.triggered_at) - label.at_s
    if not label.accepts(label.at_s + off):
        reasons.append(f"triggered_at {off:+.0f} s off")
    return "; ".join(reasons)


def judge_observation(observation: Observation) -> list[Verdict]:
    """Match one scenario's alerts to its labels."""
    verdicts: list[Verdict] = []
    name = observation.scenario
    types = {e.type for e in observation.expected} | {a.type for a in observation.alerts}
    for alert_type in sorted(types):
        labels = sorted(((i, e) for i, e in enumerate(observation.expected) if e.type == alert_type),
                        key=lambda pair: pair[1].at_s)
        left = sorted((a for a in observation.alerts if a.type == alert_type), key=lambda a: a.triggered_at)
        missed: list[tuple[int, Expected]] = []
        for index, label in labels:
            fits = [a for a in left if a.severity == label.severity
                    and label.accepts(_offset_s(observation, a.triggered_at))]
            if not fits:
                missed.append((index, label))
                continue
            alert = min(fits, key=lambda a: abs(_offset_s(observation, a.triggered_at) - label.at_s))
            left.remove(alert)
            completed = observation.completed_at[index] if index < len(observation.completed_at) else None
            latency = (alert.raised_at.timestamp() - completed) * 1000 if completed is not None else None
            verdicts.append(Verdict(scenario=name, type=alert_type, outcome="tp", expected=describe_expected(label),
                                    seen=describe_seen(observation, alert), latency_ms=latency))
        for _, label in missed:
            if left:
                alert = min(left, key=lambda a: abs(_offset_s(observation, a.triggered_at) - label.at_s))
                left.remove(alert)
                seen = f"{describe_seen(observation, alert)}: {_why_not(observation, label, alert)}"
            else:
                seen = "nothing"
            verdicts.append(Verdict(scenario=name, type=alert_type, outcome="fn", expected=describe_expected(label),
                                    seen=seen))
        for alert in left:
            expected = ("one alert per episode" if labels
                        else "no alert of this type" + (" (labelled)" if alert_type in observation.rules else ""))
            verdicts.append(Verdict(scenario=name, type=alert_type, outcome="fp", expected=expected,
                                    seen=describe_seen(observation, alert)))
    return verdicts


def score(observations: Iterable[Observation]) -> Score:
    """Per-rule figures for every rule the scenarios exercise or alerted on, in docs/rules.md order."""
    observations = list(observations)
    verdicts = [v for o in observations for v in judge_observation(o)]
    types = {t for o in observations for t in o.rules} | {v.type for v in verdicts}
    order = {t: i for i, t in enumerate(ALERT_TYPES)}
    rules = []
    for alert_type in sorted(types, key=lambda t: (order.get(t, len(order)), t)):
        mine = [v for v in verdicts if v.type == alert_type]
        rules.append(RuleScore(
            type=alert_type,
            scenarios=sum(1 for o in observations if alert_type in o.rules),
            expected=sum(1 for o in observations for e in o.expected if e.type == alert_type),
            tp=sum(1 for v in mine if v.outcome == "tp"),
            fp=sum(1 for v in mine if v.outcome == "fp"),
            fn=sum(1 for v in mine if v.outcome == "fn"),
            latencies_ms=tuple(v.latency_ms for v in mine if v.outcome == "tp" and v.latency_ms is not None),
        ))
    return Score(tuple(rules), tuple(verdicts))
