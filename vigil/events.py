"""Events that services exchange over Kafka, named in the past tense.

Alert events are keyed by device id on the alerts topic; the alerts service turns them into
rows. The id of an alert is derived from its natural key, so a redelivered event is harmless.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel

Severity = Literal["critical", "high", "medium", "low"]
IncidentKind = Literal["water_damage", "fire", "accident"]
PolicyLine = Literal["health", "home"]
_ALERT_NS = uuid.UUID("5d1c3a0e-0b6f-4a55-9d0c-76a1e1a7c0de")


def alert_id(device_id: str, alert_type: str, triggered_at_ms: int) -> str:
    """The natural id of one episode of one condition on one device."""
    return str(uuid.uuid5(_ALERT_NS, f"{device_id}|{alert_type}|{triggered_at_ms}"))


class AlertChanged(BaseModel):
    """A rule raised an alert, found its condition still (or again) present, or saw it clear."""

    change: Literal["raised", "updated", "cleared"]
    alert_id: str
    type: str
    severity: Severity
    member_id: str
    device_id: str
    triggered_at_ms: int
    detected_at_ms: int
    cleared_at_ms: int | None = None
    opens_incident: bool = False
    evidence: dict[str, Any]


class IncidentOpened(BaseModel):
    """An alert's episode became a loss that may lead to a claim (the incident each rule may open, docs/rules.md).

    Keyed by member id on the incidents topic. Opened once per episode; the id is derived from the
    device, the kind and the moment the loss began, so a redelivered event is harmless. The claims
    bridge decides whether the member's policy covers it: `covered_by` names the line that would
    have to, and nothing here says whether it does.
    """

    incident_id: str
    kind: IncidentKind
    covered_by: PolicyLine
    member_id: str
    device_id: str
    location: str | None = None
    alert_id: str
    alert_type: str
    # Event time at which the loss began (the first reading of the condition, the fall itself).
    started_at_ms: int
    # Event time at which the episode met the incident's condition, and wall time it was found.
    condition_met_at_ms: int
    detected_at_ms: int
    evidence: dict[str, Any]
