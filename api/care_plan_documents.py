"""Care plans as the API keeps them: the document stored in `members.care_plan`, its checks, its effect.

Pure: the SQL lives in `api.registry_sql`, the publishing in `api.care_plan_publisher`.

The stored document is `{"version", "overrides", "note", "updated_at", "updated_by"}`. A row written
before plans had versions holds the bare overrides (the column's default is `{}`) and reads as
version 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from typing import Any

from api.auth import Principal
from vigil.care_plan_events import CarePlanChanged
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.overrides import ENABLED, describe_overridable, rules_with_overrides, validate_overrides
from vigil.telemetry import to_ms
from vigil.timefmt import utc_text


def stored_plan(document: Mapping[str, Any] | None) -> dict[str, Any]:
    """The plan a `members.care_plan` value holds, in the current shape."""
    document = dict(document or {})
    if isinstance(document.get("version"), int) and isinstance(document.get("overrides"), dict):
        return {
            "version": document["version"],
            "overrides": document["overrides"],
            "note": document.get("note"),
            "updated_at": document.get("updated_at"),
            "updated_by": document.get("updated_by"),
        }
    return {"version": 0, "overrides": document, "note": None, "updated_at": None, "updated_by": None}


def author(caller: Principal) -> str:
    return "admin" if caller.is_admin else f"care_manager:{caller.care_manager_id}"


def next_plan(
    previous: Mapping[str, Any], overrides: dict[str, Any], note: str | None, at: datetime, caller: Principal
) -> dict[str, Any]:
    """The document that replaces `previous` (as `stored_plan` reads it)."""
    return {
        "version": previous["version"] + 1,
        "overrides": overrides,
        "note": note,
        "updated_at": utc_text(at),
        "updated_by": author(caller),
    }


def first_plan(overrides: dict[str, Any], at: datetime, caller: Principal) -> dict[str, Any]:
    """The document of a new member: version 1 when it has overrides, else the defaults' version 0."""
    if not overrides:
        return {"version": 0, "overrides": {}, "note": None, "updated_at": None, "updated_by": None}
    return next_plan({"version": 0}, overrides, None, at, caller)


def plan_changed(member_id: str, plan: Mapping[str, Any], at: datetime) -> CarePlanChanged:
    return CarePlanChanged(
        member_id=member_id, version=plan["version"], overrides=plan["overrides"], changed_at_ms=to_ms(at)
    )


def override_errors(overrides: Any, field: str) -> list[dict[str, Any]]:
    """The problems `validate_overrides` finds, as validation errors located at `<field>.<type>.<parameter>`."""
    if not isinstance(overrides, dict):
        return [{"loc": ("body", field), "msg": "must be an object keyed by alert type", "type": "value_error"}]
    errors = []
    for problem in validate_overrides(overrides):
        # "rule.parameter: message"; a parameter may hold dots itself (`tiers.0.threshold`), a rule type never.
        path, sep, message = problem.partition(": ")
        if not sep:
            path, message = "", problem
        loc = ("body", field, *(part for part in path.split(".", 1) if part))
        errors.append({"loc": loc, "msg": message, "type": "value_error"})
    return errors


def plan_problems(overrides: Mapping[str, Any]) -> list[str]:
    """Why a stored plan no longer fits the rules (they changed since it was stored); empty when it does."""
    return validate_overrides(overrides)


def effective_rules(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every default rule by alert type as it applies under `overrides` (valid ones; see `plan_problems`).

    `overridable` gives each parameter a plan may set, in the plan's naming, with its type, effective
    value and default; `parameters` the whole effective rule description.
    """
    switched_on = {rule.type for rule in rules_with_overrides(DEFAULT_RULES, overrides)}
    # Applied with every rule on, so that a switched-off rule still shows the parameters it would have.
    values_only = {kind: {k: v for k, v in changes.items() if k != ENABLED} for kind, changes in overrides.items()}
    applied = {rule.type: rule for rule in rules_with_overrides(DEFAULT_RULES, values_only)}
    overridable = describe_overridable(DEFAULT_RULES)
    rules = {}
    for default in DEFAULT_RULES:
        rule = applied[default.type]
        enabled = default.type in switched_on
        rules[default.type] = {
            "enabled": enabled,
            "overridden": sorted(overrides.get(default.type, {})),
            "overridable": {
                name: {
                    "type": _TYPE_NAMES[kind],
                    "value": enabled if name == ENABLED else _value(rule, name),
                    "default": True if name == ENABLED else _value(default, name),
                }
                for name, kind in overridable[default.type].items()
            },
            "parameters": asdict(rule),
        }
    return rules


_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number"}


def _value(rule: Any, path: str) -> Any:
    """A parameter by its override name: `threshold`, or `tiers.0.threshold` inside a tier."""
    value = rule
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    return value
