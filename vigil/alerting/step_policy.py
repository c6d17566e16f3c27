"""What to do when a ladder step falls due: stop, wait, or send to whom (CONTRACT §5).

Pure: the scheduler's step job applies the decision (outreach rows, a call task, the step's state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from vigil.alerting.facts import AlertFacts, MemberFacts
from vigil.alerting.ladder import PlannedStep
from vigil.alerting.lifecycle import stops_ladder
from vigil.alerting.quiet_hours import quiet_until

ToRole = Literal["member", "care_manager", "emergency_contact"]

NO_CONSENT = "the member has not consented to outreach"


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One message to one channel of one recipient (one outbox row); `skipped` ones are recorded, not sent."""

    to_role: ToRole
    recipient_key: str
    recipient_name: str
    target: str
    channel: str
    status: Literal["pending", "skipped"]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """The step is not run and never will be (the alert was acknowledged or resolved)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Defer:
    """The step waits until `until` (UTC) and is decided again then."""

    until: datetime
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Run the step: these deliveries, a call task for the care manager, and whether it escalates the alert."""

    deliveries: tuple[Delivery, ...]
    call_task: bool
    escalates: bool


StepDecision = Stop | Defer | Send


def decide_step(*, alert: AlertFacts, step: PlannedStep, member: MemberFacts, now: datetime,
                last_sent_at: datetime | None, group_interval_s: int) -> StepDecision:
    """The decision for `step` of `alert` at `now`; `last_sent_at` is this step's recipient's last message."""
    if stops_ladder(alert.status):
        return Stop(f"the alert was {alert.status} before this step fell due")
    if alert.snoozed_until is not None and now < alert.snoozed_until:
        return Defer(alert.snoozed_until, "the alert is snoozed")
    reaches_member = step.recipient == "member" and (member.consent_outreach or member.contact_by_call)
    if alert.severity != "critical":
        quiet_end = quiet_until(member.quiet_hours, member.timezone, now) if reaches_member else None
        if quiet_end is not None:
            local_end = quiet_end.astimezone(ZoneInfo(member.timezone))
            return Defer(quiet_end, f"the member's quiet hours, until {local_end:%H:%M} ({member.timezone})")
        if last_sent_at is not None and now < last_sent_at + timedelta(seconds=group_interval_s):
            return Defer(last_sent_at + timedelta(seconds=group_interval_s),
                         f"grouped: the recipient had a message less than {group_interval_s} s ago")
    return Send(
        deliveries=_deliveries(step.recipient, member),
        call_task=step.recipient == "member" and member.contact_by_call and member.consent_outreach,
        escalates=step.recipient in ("care_manager", "emergency_contacts"),
    )


def _deliveries(recipient: str, member: MemberFacts) -> tuple[Delivery, ...]:
    if recipient == "member":
        return _to_one("member", f"member:{member.id}", member.name, member.outreach_urls,
                       NO_CONSENT if not member.consent_outreach else None,
                       "the member has no outreach URL")
    if recipient == "care_manager":
        manager = member.care_manager
        if manager is None:
            return (_skipped("care_manager", "care_manager:none", "", "the member has no care manager"),)
        return _to_one("care_manager", f"care_manager:{manager.id}", manager.name, manager.outreach_urls, None,
                       "the care manager has no outreach URL; the alert waits in the console")
    if not member.emergency_contacts:
        return (_skipped("emergency_contact", "contact:none", "", "the member has no emergency contacts"),)
    deliveries = []
    for index, contact in enumerate(member.emergency_contacts):
        urls = (contact.outreach_url,) if contact.outreach_url else ()
        deliveries.extend(_to_one("emergency_contact", f"contact:{index}", contact.name, urls,
                                  NO_CONSENT if not member.consent_outreach else None,
                                  "this contact has no outreach URL"))
    return tuple(deliveries)


def _to_one(role: ToRole, key: str, name: str, urls: tuple[str, ...], refusal: str | None,
            no_url: str) -> tuple[Delivery, ...]:
    """One delivery per channel of one recipient: pending, or skipped (with the refusal) for each."""
    if not urls:
        return (_skipped(role, key, name, refusal or no_url),)
    return tuple(
        Delivery(to_role=role, recipient_key=key, recipient_name=name, target=url, channel=channel_of(url),
                 status="skipped" if refusal else "pending", reason=refusal)
        for url in urls
    )


def _skipped(role: ToRole, key: str, name: str, reason: str) -> Delivery:
    return Delivery(to_role=role, recipient_key=key, recipient_name=name, target="", channel="none",
                    status="skipped", reason=reason)


def channel_of(url: str) -> str:
    """The channel of an Apprise URL: its scheme (`mailto`, `json`, ...)."""
    scheme, found, _ = url.partition("://")
    return scheme.lower() if found and scheme else "unknown"
