"""Rule descriptions: frozen, keyword-only data that a handful of generic evaluators judge.

Adding a rule is adding a row to `vigil.rules.catalog.DEFAULT_RULES`. Thresholds are in the unit
of the rule's metric (see `vigil.telemetry.METRICS`); durations carry their unit in their name.
Fields marked `FIXED` are not open to care-plan overrides (see `vigil.rules.overrides`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vigil.events import IncidentKind, PolicyLine, Severity

Comparison = Literal["above", "at_least", "below", "at_most"]

SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
# An open alert's evidence is refreshed at most this often (event time), so that a condition that
# lasts for hours does not flood the alerts topic; a severity change is always sent at once.
DEFAULT_UPDATE_EVERY_S = 900
WORN_METRIC = "worn"
STEPS_METRIC = "steps"
# Marks a field that a care plan may not change: a safety floor from a standard, or plumbing.
FIXED = {"overridable": False}


def compare(value: float, op: Comparison, threshold: float) -> bool:
    """Whether `value` meets `op threshold`."""
    if op == "above":
        return value > threshold
    if op == "at_least":
        return value >= threshold
    if op == "below":
        return value < threshold
    return value <= threshold


def overlaps(op_a: Comparison, threshold_a: float, op_b: Comparison, threshold_b: float) -> bool:
    """Whether some value meets both conditions: a raise and a clear condition must never overlap."""
    upper_a, upper_b = op_a in ("below", "at_most"), op_b in ("below", "at_most")
    if upper_a == upper_b:
        return True  # two half-lines pointing the same way always share values
    (low_op, low), (high_op, high) = ((op_b, threshold_b), (op_a, threshold_a)) if upper_a else (
        (op_a, threshold_a), (op_b, threshold_b))
    if low < high:
        return True
    return low == high and low_op == "at_least" and high_op == "at_most"


@dataclass(frozen=True, slots=True, kw_only=True)
class Tier:
    """One level of a sustained condition: the 1-minute mean meets `op threshold` for `minutes`."""

    op: Comparison
    threshold: float
    minutes: int
    severity: Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class Incident:
    """When an alert's episode becomes an incident that may lead to a claim.

    It does once the condition has been observed for `after_s` (first to last reading meeting it), or
    as soon as an alert of one of the `or_with` types is open on the same device. `covered_by` is
    the policy line that would have to cover it: the claims bridge decides, the rules do not.
    """

    kind: IncidentKind
    covered_by: PolicyLine
    after_s: int = 0
    or_with: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SustainedMinutesRule:
    """The 1-minute mean of a metric meets a tier's condition for that tier's run of whole minutes.

    Tiers are checked independently; the most severe one met decides the severity, and a tier met
    later while the alert is open raises the alert's severity. A minute with no reading (or, with
    `requires_worn`, with an off-body flag) is silence: a run bridges at most `max_silent_minutes`
    of it, so health rules (0) need consecutive minutes while home sensors that sample every few
    minutes still build runs. The alert clears after `clear_minutes` of minutes meeting the clear
    condition, under the same silence rule.
    """

    type: str
    metric: str
    tiers: tuple[Tier, ...]
    clear_op: Comparison
    clear_threshold: float
    clear_minutes: int
    requires_worn: bool = False
    # Activity guard: the steps counted over a tier's minutes must stay below this.
    max_steps: int | None = None
    max_silent_minutes: int = 0
    # A mean at or below this never counts toward any tier, whatever the tiers say (UL 2034 for CO).
    never_at_or_below: float | None = field(default=None, metadata=FIXED)
    update_every_s: int = field(default=DEFAULT_UPDATE_EVERY_S, metadata=FIXED)
    incident: Incident | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanRule:
    """Readings meeting a condition span at least `span_s` seconds (0: a single reading raises).

    The run starts at the first reading meeting the condition and breaks at the first that does
    not. The alert clears once readings meeting the clear condition span `clear_s` seconds; a
    reading between the two conditions breaks the clearing run too.
    """

    type: str
    metric: str
    op: Comparison
    threshold: float
    span_s: int
    severity: Severity
    clear_op: Comparison
    clear_threshold: float
    clear_s: int
    update_every_s: int = field(default=DEFAULT_UPDATE_EVERY_S, metadata=FIXED)
    incident: Incident | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowCountRule:
    """The metric's values summed over any `window_s` (both ends included) reach `threshold`.

    The alert clears once `clear_s` of event time pass without a reading above zero.
    """

    type: str
    metric: str
    threshold: float
    window_s: int
    severity: Severity
    clear_s: int
    update_every_s: int = field(default=DEFAULT_UPDATE_EVERY_S, metadata=FIXED)
    incident: Incident | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FallRule:
    """The device's fall flag, then no activity for `quiet_s`: the member did not get up.

    Judged once the device's readings reach the fall plus `quiet_s`; activity after the fall and
    up to that moment (inclusive) stands the alert down. A rule never clears it (a person resolves
    it): a later fall within `regroup_s` of the last one updates the same alert, after that the
    rule forgets the episode and the next fall is a new alert.
    """

    type: str
    metric: str
    activity_metric: str
    quiet_s: int
    severity: Severity
    regroup_s: int
    requires_worn: bool = False
    update_every_s: int = field(default=DEFAULT_UPDATE_EVERY_S, metadata=FIXED)
    incident: Incident | None = None


Rule = SustainedMinutesRule | SpanRule | WindowCountRule | FallRule
