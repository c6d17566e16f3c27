"""The plain facts a claim is built from; the claims bridge fills them from rows and the incident event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from vigil.events import IncidentOpened


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberFacts:
    """The insured: who they are, where they live, their policy and whether they let Vigil claim for them."""

    id: str
    name: str
    birth_date: date | None
    phone: str | None
    email: str | None
    address: str | None
    timezone: str
    policy_number: str
    policy_line: str  # health | home | both
    auto_claims: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceFacts:
    """The device that saw the loss; `location` is a room only for home devices."""

    device_id: str
    kind: str  # wearable | home
    location: str | None
    report_interval_s: int
    registered_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentFacts:
    """One incident as the rules opened it (`vigil.events.IncidentOpened`), times as aware datetimes."""

    id: str
    kind: str  # water_damage | fire | accident
    covered_by: str  # health | home
    member_id: str
    device_id: str
    alert_id: str
    alert_type: str
    location: str | None
    # Event time the loss began, event time it met the incident's condition, wall time it was found.
    started_at: datetime
    condition_met_at: datetime
    detected_at: datetime
    evidence: Mapping[str, Any]


def incident_facts(event: IncidentOpened) -> IncidentFacts:
    """The incident as the claim is built from it, from the event the rules published."""
    def moment(ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC)

    return IncidentFacts(
        id=event.incident_id, kind=event.kind, covered_by=event.covered_by, member_id=event.member_id,
        device_id=event.device_id, alert_id=event.alert_id, alert_type=event.alert_type, location=event.location,
        started_at=moment(event.started_at_ms), condition_met_at=moment(event.condition_met_at_ms),
        detected_at=moment(event.detected_at_ms), evidence=event.evidence,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRecord:
    """An alert row: what the rule saw and what people did about it (`history` as stored)."""

    id: str
    type: str
    severity: str
    status: str
    triggered_at: datetime
    raised_at: datetime
    cleared_at: datetime | None
    resolved_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    outcome: str | None
    history: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """One stored reading of the device."""

    ts: datetime
    metric: str
    value: float
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OutreachRecord:
    """One message sent or tried about an alert (the outreach log)."""

    alert_id: str
    step: int
    to: str
    channel: str
    status: str
    reason: str | None
    attempts: int
    at: datetime
