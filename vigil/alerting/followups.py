"""What follows an alert once the moment has passed: a check-in call the next day, a prevention tip."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vigil.alerting.facts import AlertFacts, MemberFacts
from vigil.alerting.quiet_hours import QuietHours, quiet_until

CHECK_IN_AT = time(10, 0)  # member's local time: late enough to be up, early enough to act the same day


def check_in_due(alert: AlertFacts, member_tz: str, now: datetime, *, outcome: str | None = None) -> datetime | None:
    """When the care manager's check-in call is due (UTC), or None when the alert needs none.

    After a fall: 10:00 the day after it was raised (asked when it is raised; asking again later gives
    the same time). After another critical alert: 10:00 the day after it was resolved (`now`), unless it
    was a false alarm (`outcome`).
    """
    if alert.type == "fall":
        return _next_day_at(alert.raised_at, member_tz)
    if alert.severity == "critical" and alert.status == "resolved" and outcome != "false_alarm":
        return _next_day_at(now, member_tz)
    return None


def _next_day_at(moment: datetime, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    day = moment.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(day, CHECK_IN_AT, tzinfo=zone).astimezone(UTC)


def wants_tip(alert: AlertFacts, outcome: str | None, *, member: MemberFacts | None = None) -> bool:
    """Whether to send the member a prevention tip as the alert is resolved with `outcome` (None: it cleared).

    Only after an incident that was real; never to a member who has not consented to outreach.
    """
    if member is not None and not member.consent_outreach:
        return False
    return alert.opens_incident and outcome != "false_alarm"


def tip_due(resolved_at: datetime, *, delay_s: int, quiet: QuietHours | None, tz: str) -> datetime:
    """When the prevention tip goes out: `delay_s` after the alert was resolved, and never in quiet hours.

    Advice lands better once the moment has passed: a member who has just answered "I'm OK" to a leak
    is still mopping up.
    """
    due = resolved_at + timedelta(seconds=delay_s)
    return quiet_until(quiet, tz, due) or due
