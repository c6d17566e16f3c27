"""Per-member parameters: a care plan's overrides of the default rules, validated and applied.

An override maps a rule type to `{"enabled": bool, <field>: number, ...}`. Fields are the numeric
fields of the rule's description (thresholds in the metric's unit, durations with their unit in
their name); a tier's fields are named `tiers.<index>.<field>`. Fields marked `FIXED` in
`vigil.rules.spec` (a standard's safety floor, the update rate limit) and the incident
conditions (claims policy, not care) are not overridable. Everything is checked before anything is
applied, and a problem reads "rule.field: message", for the API to answer with a 422.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields, replace
from functools import cache
from typing import Any, get_type_hints

from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.spec import Rule, SpanRule, SustainedMinutesRule, Tier, overlaps
from vigil.telemetry import METRICS

ENABLED = "enabled"
MAX_WINDOW_MINUTES = 180
MAX_DURATION_S = 7 * 86_400
# Allowed values per field name (the last part of a tier's path): (least, most, unit).
_LIMITS: dict[str, tuple[float, float, str]] = {
    "minutes": (1, MAX_WINDOW_MINUTES, "minutes"),
    "clear_minutes": (1, MAX_WINDOW_MINUTES, "minutes"),
    "max_silent_minutes": (0, MAX_WINDOW_MINUTES, "minutes"),
    "span_s": (0, MAX_DURATION_S, "s"),
    "clear_s": (0, MAX_DURATION_S, "s"),
    "window_s": (1, MAX_DURATION_S, "s"),
    "quiet_s": (1, MAX_DURATION_S, "s"),
    "regroup_s": (0, MAX_DURATION_S, "s"),
    "max_steps": (1, 1_000_000, "steps"),
}
_THRESHOLDS = frozenset({"threshold", "clear_threshold"})


def describe_overridable(base_rules: tuple[Rule, ...] = DEFAULT_RULES) -> dict[str, dict[str, type]]:
    """Per rule type, the fields a care plan may set and their types (`enabled` included)."""
    return {rule.type: {ENABLED: bool, **_numeric_fields(rule)} for rule in base_rules}


def validate_overrides(overrides: Any, base_rules: tuple[Rule, ...] = DEFAULT_RULES) -> list[str]:
    """Every problem with a care plan's overrides, as "rule.field: message"; empty when valid."""
    if not isinstance(overrides, Mapping):
        return [f"care_plan: must be an object of rule types, not {overrides!r}"]
    rules = {rule.type: rule for rule in base_rules}
    problems: list[str] = []
    for kind, changes in overrides.items():
        rule = rules.get(kind)
        if rule is None:
            problems.append(f"{kind}: unknown rule (known: {', '.join(sorted(rules))})")
            continue
        if not isinstance(changes, Mapping):
            problems.append(f"{kind}: must be an object of field values, not {changes!r}")
            continue
        found = [f"{kind}.{name}: {problem}" for name, value in changes.items()
                 if (problem := _field_problem(rule, name, value))]
        problems.extend(found)
        if not found:
            problems.extend(f"{kind}.{problem}" for problem in _rule_problems(_apply(rule, changes)))
    return problems


def rules_with_overrides(base_rules: tuple[Rule, ...], overrides: Mapping[str, Mapping[str, Any]]) -> tuple[Rule, ...]:
    """The rules with a care plan applied and the switched-off ones left out.

    Raises ValueError naming every rule and field at fault.
    """
    problems = validate_overrides(overrides, base_rules)
    if problems:
        raise ValueError("; ".join(problems))
    applied = []
    for rule in base_rules:
        changes = overrides.get(rule.type) or {}
        if changes.get(ENABLED, True):
            applied.append(_apply(rule, changes))
    return tuple(applied)


@cache
def _numeric_fields(rule: Rule) -> dict[str, type]:
    # A field that may be None (the activity guard) is a number to override only where the rule sets
    # it; a flag's thresholds (1 raises, 0 clears) are what the flag means, not a parameter.
    flag = (spec := METRICS.get(rule.metric)) is not None and spec.flag
    names = {name: kind for name, kind in _class_numeric_fields(type(rule)).items()
             if getattr(rule, name) is not None and not (flag and name in _THRESHOLDS)}
    if isinstance(rule, SustainedMinutesRule):
        tier_fields = _class_numeric_fields(Tier)
        for i in range(len(rule.tiers)):
            names |= {f"tiers.{i}.{name}": kind for name, kind in tier_fields.items()}
    return names


@cache
def _class_numeric_fields(cls: type) -> dict[str, type]:
    hints = get_type_hints(cls)
    numeric: dict[str, type] = {}
    for f in fields(cls):
        if f.metadata.get("overridable", True) is False:
            continue
        hint = hints[f.name]
        if hint in (int, float):
            numeric[f.name] = hint
        elif hint == int | None:
            numeric[f.name] = int
    return numeric


def _field_problem(rule: Rule, name: str, value: Any) -> str | None:
    if name == ENABLED:
        return None if isinstance(value, bool) else f"must be true or false, not {value!r}"
    kind = _numeric_fields(rule).get(name)
    if kind is None:
        return f"unknown field (overridable: {', '.join([ENABLED, *_numeric_fields(rule)])})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {value!r}"
    if not math.isfinite(value):
        return f"must be a finite number, not {value!r}"
    if kind is int and value != int(value):
        return f"must be a whole number, not {value!r}"
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _LIMITS:
        least, most, unit = _LIMITS[leaf]
        if not least <= value <= most:
            return f"must be {least:g} to {most:g} {unit}, not {value!r}"
    if leaf in _THRESHOLDS and (spec := METRICS.get(rule.metric)) is not None and not spec.low <= value <= spec.high:
        return f"must lie in {rule.metric}'s range, {spec.low:g} to {spec.high:g} {spec.unit}, not {value!r}"
    return None


def _rule_problems(rule: Rule) -> list[str]:
    """Problems of a whole rule once its fields are applied: conditions that could meet."""
    problems = []
    if isinstance(rule, SustainedMinutesRule):
        for i, tier in enumerate(rule.tiers):
            if overlaps(tier.op, tier.threshold, rule.clear_op, rule.clear_threshold):
                problems.append(f"clear_threshold: {rule.clear_op} {rule.clear_threshold:g} meets tier {i}'s "
                                f"{tier.op} {tier.threshold:g}: a minute could raise and clear the alert at once")
            if rule.never_at_or_below is not None and tier.threshold <= rule.never_at_or_below:
                problems.append(f"tiers.{i}.threshold: must stay above {rule.never_at_or_below:g}, "
                                f"at or below which {rule.type} never alarms, not {tier.threshold:g}")
    elif isinstance(rule, SpanRule) and overlaps(rule.op, rule.threshold, rule.clear_op, rule.clear_threshold):
        problems.append(f"clear_threshold: {rule.clear_op} {rule.clear_threshold:g} meets the raise condition "
                        f"{rule.op} {rule.threshold:g}: a reading could raise and clear the alert at once")
    return problems


def _apply(rule: Rule, changes: Mapping[str, Any]) -> Rule:
    kinds = _numeric_fields(rule)
    top: dict[str, Any] = {}
    tiers: dict[int, dict[str, Any]] = {}
    for name, value in changes.items():
        if name == ENABLED:
            continue
        value = kinds[name](value)
        if name.startswith("tiers."):
            _, index, leaf = name.split(".")
            tiers.setdefault(int(index), {})[leaf] = value
        else:
            top[name] = value
    if tiers:
        top["tiers"] = tuple(replace(tier, **tiers.get(i, {})) for i, tier in enumerate(rule.tiers))
    return replace(rule, **top) if top else rule
