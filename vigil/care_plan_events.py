"""Care-plan changes on the `vigil.care-plans` topic: the event, its key and its (de)serialisation.

The API publishes a `CarePlanChanged` each time a member's plan is stored; the stream worker reads
the topic to judge each member by their own thresholds. The topic is compacted and keyed by member
id, so it always holds the latest plan of every member, and a worker reading it from the beginning
knows every plan. Records of one member are written in version order (the API holds the member's
row lock until Kafka has acknowledged), so the last record of a key is the plan in force.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil.validation_errors import first_error

# Per rule type, `enabled` and the rule's numeric fields (see `vigil.rules.overrides`).
Overrides = dict[str, dict[str, Any]]


class MalformedCarePlan(ValueError):
    """A care-plans record that is not a `CarePlanChanged`; the message says why."""


class CarePlanChanged(BaseModel):
    """A member's care plan was stored: the whole set of overrides now in force, not a difference."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    member_id: str = Field(min_length=1)
    # Starts at 1 and grows by one with each change of the member's plan.
    version: int = Field(ge=1)
    overrides: Overrides
    # Wall time at which the API stored the plan, in epoch milliseconds.
    changed_at_ms: int = Field(ge=0)


def care_plan_key(member_id: str) -> bytes:
    """The record key: the member id, UTF-8."""
    return member_id.encode()


def encode_care_plan(event: CarePlanChanged) -> bytes:
    """The record value: the event as compact JSON."""
    return event.model_dump_json().encode()


def decode_care_plan(value: bytes | None, key: bytes | None = None) -> CarePlanChanged | None:
    """Parse one record value; None for a tombstone (the member's plan is gone: use the defaults).

    Raises `MalformedCarePlan` for anything else that is not a `CarePlanChanged`, including a
    record whose key (when given) names another member than its value.
    """
    if value is None:
        return None
    try:
        event = CarePlanChanged.model_validate_json(value)
    except ValidationError as e:
        where, message = first_error(e, whole="value")
        raise MalformedCarePlan(f"{where}: {message}") from e
    if key is not None and key != care_plan_key(event.member_id):
        raise MalformedCarePlan(f"key {key!r} does not match member_id {event.member_id!r}")
    return event
