"""Follow-ups: the check-in call the next day and the prevention tip after an incident."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from vigil.alerting.facts import AlertFacts, MemberFacts
from vigil.alerting.followups import check_in_due, tip_due, wants_tip
from vigil.alerting.quiet_hours import parse_quiet_hours


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _alert(alert_type: str, severity: str, status: str, raised: str = "2025-06-03T21:30",
           opens_incident: bool = False) -> AlertFacts:
    return AlertFacts(id="a-1", type=alert_type, severity=severity, status=status, device_id="d-1", location=None,
                      triggered_at=_utc(raised), raised_at=_utc(raised), evidence={}, opens_incident=opens_incident)


@pytest.mark.parametrize(("alert", "tz", "now", "outcome", "due"), [
    # A fall, as it is raised: 10:00 Paris (08:00 UTC) the next day.
    (_alert("fall", "critical", "open"), "Europe/Paris", "2025-06-03T21:30", None, "2025-06-04T08:00"),
    # Raised at 23:30 Paris on the 3rd = 21:30 UTC; in New York it is still the 3rd at 17:30: due on the 4th.
    (_alert("fall", "critical", "open"), "America/New_York", "2025-06-03T21:30", None, "2025-06-04T14:00"),
    # Raised at 00:30 Paris on the 4th (22:30 UTC on the 3rd): the next day there is the 5th.
    (_alert("fall", "critical", "open", raised="2025-06-03T22:30"), "Europe/Paris", "2025-06-03T22:30", None,
     "2025-06-05T08:00"),
    # The same fall asked again when resolved, even as a false alarm: the same time (one task).
    (_alert("fall", "critical", "resolved"), "Europe/Paris", "2025-06-06T09:00", "false_alarm", "2025-06-04T08:00"),
    # Another critical alert: the day after it was resolved.
    (_alert("co", "critical", "resolved"), "Europe/Paris", "2025-06-05T12:00", "assisted", "2025-06-06T08:00"),
    (_alert("co", "critical", "resolved"), "Europe/Paris", "2025-06-05T12:00", None, "2025-06-06T08:00"),
    # Across the autumn clock change: 10:00 CET is 09:00 UTC.
    (_alert("smoke", "critical", "resolved"), "Europe/Paris", "2025-10-25T20:00", "member_ok", "2025-10-26T09:00"),
    # None: not yet resolved, a false alarm, or not critical.
    (_alert("co", "critical", "open"), "Europe/Paris", "2025-06-05T12:00", None, None),
    (_alert("co", "critical", "resolved"), "Europe/Paris", "2025-06-05T12:00", "false_alarm", None),
    (_alert("water_leak", "high", "resolved"), "Europe/Paris", "2025-06-05T12:00", "assisted", None),
    (_alert("low_spo2", "high", "resolved"), "Europe/Paris", "2025-06-05T12:00", "assisted", None),
])
def test_check_in_due(alert, tz, now, outcome, due):
    assert check_in_due(alert, tz, _utc(now), outcome=outcome) == (None if due is None else _utc(due))


MEMBER = MemberFacts(id="m-1", name="Anna Meyer", consent_outreach=True)


@pytest.mark.parametrize(("opens_incident", "outcome", "member", "wanted"), [
    (True, "assisted", MEMBER, True),
    (True, "member_ok", MEMBER, True),
    (True, None, MEMBER, True),  # the condition cleared by itself
    (True, "emergency_dispatched", None, True),
    (True, "false_alarm", MEMBER, False),
    (False, "assisted", MEMBER, False),
    (True, "assisted", replace(MEMBER, consent_outreach=False), False),
])
def test_wants_tip(opens_incident, outcome, member, wanted):
    alert = _alert("water_leak", "high", "resolved", opens_incident=opens_incident)
    assert wants_tip(alert, outcome, member=member) is wanted


@pytest.mark.parametrize(("resolved", "delay_s", "quiet", "tz", "due"), [
    # An hour after the resolution.
    ("2025-06-03T12:00", 3600, None, "Europe/Paris", "2025-06-03T13:00"),
    ("2025-06-03T12:00", 0, None, "Europe/Paris", "2025-06-03T12:00"),
    # An hour after 21:30 Paris is 22:30, inside 22:00-07:00: at 07:00 Paris (05:00 UTC) the next day.
    ("2025-06-03T19:30", 3600, ("22:00", "07:00"), "Europe/Paris", "2025-06-04T05:00"),
    # Outside the quiet hours: the hour is all it waits.
    ("2025-06-03T10:00", 3600, ("22:00", "07:00"), "Europe/Paris", "2025-06-03T11:00"),
])
def test_the_tip_waits_for_the_moment_to_pass_and_for_the_quiet_hours_to_end(resolved, delay_s, quiet, tz, due):
    hours = parse_quiet_hours({"start": quiet[0], "end": quiet[1]}) if quiet else None
    assert tip_due(_utc(resolved), delay_s=delay_s, quiet=hours, tz=tz) == _utc(due)
