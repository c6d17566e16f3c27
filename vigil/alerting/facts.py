"""The plain facts outreach decisions and messages are made from; the adapters fill them from rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from vigil.alerting.quiet_hours import QuietHours


@dataclass(frozen=True, slots=True, kw_only=True)
class Contact:
    """One of a member's emergency contacts; `outreach_url` is their Apprise URL, if any."""

    name: str
    phone: str | None = None
    relation: str | None = None
    outreach_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CareManagerFacts:
    """The member's care manager: who they are and how to reach them."""

    id: str
    name: str
    timezone: str = "UTC"
    phone: str | None = None
    email: str | None = None
    outreach_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberFacts:
    """The member an alert is about, with their consent, preferences and people."""

    id: str
    name: str
    timezone: str = "UTC"
    birth_date: date | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None
    consent_outreach: bool = False
    contact_by_call: bool = False
    quiet_hours: QuietHours | None = None
    outreach_urls: tuple[str, ...] = ()
    emergency_contacts: tuple[Contact, ...] = ()
    care_manager: CareManagerFacts | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFacts:
    """One alert as outreach sees it; `location` is its device's room."""

    id: str
    type: str
    severity: str
    status: str
    device_id: str
    location: str | None
    triggered_at: datetime
    raised_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)
    acknowledged_at: datetime | None = None
    snoozed_until: datetime | None = None
    opens_incident: bool = False
