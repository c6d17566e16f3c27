"""What a due ladder step does: severity × consent × quiet hours × snooze × acknowledgement × grouping × calls."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from vigil.alerting.facts import AlertFacts, CareManagerFacts, Contact, MemberFacts
from vigil.alerting.ladder import PlannedStep
from vigil.alerting.quiet_hours import QuietHours
from vigil.alerting.step_policy import NO_CONSENT, Defer, Delivery, Send, Stop, channel_of, decide_step

QUIET_NIGHT = datetime(2025, 6, 3, 21, 0, tzinfo=UTC)  # 23:00 in Paris
QUIET_END = datetime(2025, 6, 4, 5, 0, tzinfo=UTC)  # 07:00 in Paris
DAY = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)
GROUP_S = 120

MEMBER = MemberFacts(
    id="m-1", name="Anna Meyer", timezone="Europe/Paris", phone="+33 6 12 34 56 78", consent_outreach=True,
    quiet_hours=QuietHours(start=time(22, 0), end=time(7, 0)),
    outreach_urls=("mailto://anna:pw@example.org", "json://127.0.0.1:9/hook"),
    emergency_contacts=(Contact(name="Paul Meyer", phone="+33 6 99", relation="son", outreach_url="json://p/hook"),
                        Contact(name="Rita Roy", phone="+33 6 98", relation="neighbour")),
    care_manager=CareManagerFacts(id="cm-1", name="Dana Ko", outreach_urls=("json://cm/hook",)),
)

MEMBER_SENDS = (("member:m-1", "mailto", "pending"), ("member:m-1", "json", "pending"))
MEMBER_SKIPPED = (("member:m-1", "mailto", "skipped"), ("member:m-1", "json", "skipped"))
MANAGER_SENDS = (("care_manager:cm-1", "json", "pending"),)
CONTACTS_SEND = (("contact:0", "json", "pending"), ("contact:1", "none", "skipped"))
CONTACTS_SKIPPED = (("contact:0", "json", "skipped"), ("contact:1", "none", "skipped"))


def _alert(severity: str, status: str = "open", snoozed_until: datetime | None = None) -> AlertFacts:
    return AlertFacts(id="a-1", type="water_leak", severity=severity, status=status, device_id="d-1",
                      location="kitchen", triggered_at=DAY, raised_at=DAY, evidence={},
                      snoozed_until=snoozed_until)


def _decide(*, recipient="member", severity="high", consent=True, now=DAY, snoozed=False, status="open",
            last_sent_s_ago=None, by_call=False):
    member = replace(MEMBER, consent_outreach=consent, contact_by_call=by_call)
    snoozed_until = now + timedelta(minutes=10) if snoozed else None
    last_sent = None if last_sent_s_ago is None else now - timedelta(seconds=last_sent_s_ago)
    step = PlannedStep(step=1, recipient=recipient, kind="ladder", due_at=now)
    return decide_step(alert=_alert(severity, status, snoozed_until), step=step, member=member, now=now,
                       last_sent_at=last_sent, group_interval_s=GROUP_S)


def _summary(decision):
    if isinstance(decision, Stop):
        return ("stop",)
    if isinstance(decision, Defer):
        return ("defer", decision.until)
    assert isinstance(decision, Send)
    return ("send", tuple((d.recipient_key, d.channel, d.status) for d in decision.deliveries), decision.call_task,
            decision.escalates)


CASES = {
    # severity, consent, quiet hours: the member's step
    "high, consent, day: the member is messaged": (
        {}, ("send", MEMBER_SENDS, False, False)),
    "critical, consent, day": ({"severity": "critical"}, ("send", MEMBER_SENDS, False, False)),
    "high in quiet hours: held until they end": ({"now": QUIET_NIGHT}, ("defer", QUIET_END)),
    "medium in quiet hours: held": ({"severity": "medium", "now": QUIET_NIGHT}, ("defer", QUIET_END)),
    "low in quiet hours: held": ({"severity": "low", "now": QUIET_NIGHT}, ("defer", QUIET_END)),
    "critical in quiet hours: never held": (
        {"severity": "critical", "now": QUIET_NIGHT}, ("send", MEMBER_SENDS, False, False)),
    "no consent: the member's channels are skipped": (
        {"consent": False}, ("send", MEMBER_SKIPPED, False, False)),
    "no consent in quiet hours: nothing to hold, recorded as skipped": (
        {"consent": False, "now": QUIET_NIGHT}, ("send", MEMBER_SKIPPED, False, False)),
    # care manager and contacts
    "care manager's step escalates": ({"recipient": "care_manager"}, ("send", MANAGER_SENDS, False, True)),
    "care manager's step runs without the member's consent": (
        {"recipient": "care_manager", "consent": False}, ("send", MANAGER_SENDS, False, True)),
    "care manager's step is not held by the member's quiet hours": (
        {"recipient": "care_manager", "now": QUIET_NIGHT}, ("send", MANAGER_SENDS, False, True)),
    "contacts: one with a URL, one without": (
        {"recipient": "emergency_contacts", "severity": "critical"}, ("send", CONTACTS_SEND, False, True)),
    "contacts without consent: all skipped": (
        {"recipient": "emergency_contacts", "severity": "critical", "consent": False},
        ("send", CONTACTS_SKIPPED, False, True)),
    # snooze
    "snoozed: held until the snooze ends": ({"snoozed": True}, ("defer", DAY + timedelta(minutes=10))),
    "snoozed critical: held too (someone chose to)": (
        {"severity": "critical", "snoozed": True}, ("defer", DAY + timedelta(minutes=10))),
    "snoozed care manager step": (
        {"recipient": "care_manager", "snoozed": True}, ("defer", DAY + timedelta(minutes=10))),
    # acknowledged / resolved
    "acknowledged: stopped": ({"status": "acknowledged"}, ("stop",)),
    "resolved: stopped": ({"status": "resolved", "severity": "critical"}, ("stop",)),
    "acknowledged and snoozed: stopped, not held": ({"status": "acknowledged", "snoozed": True}, ("stop",)),
    "escalated by hand after an ack: runs": ({"status": "escalated", "recipient": "care_manager"},
                                             ("send", MANAGER_SENDS, False, True)),
    # grouping
    "grouped: a message 30 s ago holds a high alert": (
        {"last_sent_s_ago": 30}, ("defer", DAY + timedelta(seconds=90))),
    "grouped care manager step": (
        {"recipient": "care_manager", "last_sent_s_ago": 119}, ("defer", DAY + timedelta(seconds=1))),
    "grouping interval over: sent": ({"last_sent_s_ago": 120}, ("send", MEMBER_SENDS, False, False)),
    "critical is never grouped": (
        {"severity": "critical", "last_sent_s_ago": 5}, ("send", MEMBER_SENDS, False, False)),
    "quiet hours win over grouping (the later wait)": (
        {"now": QUIET_NIGHT, "last_sent_s_ago": 30}, ("defer", QUIET_END)),
    # calls
    "contact_by_call: a call task with the messages": (
        {"by_call": True}, ("send", MEMBER_SENDS, True, False)),
    "contact_by_call, no consent: no call": (
        {"by_call": True, "consent": False}, ("send", MEMBER_SKIPPED, False, False)),
    "contact_by_call in quiet hours: the call waits too": ({"by_call": True, "now": QUIET_NIGHT}, ("defer", QUIET_END)),
    "contact_by_call, critical at night: call now": (
        {"by_call": True, "severity": "critical", "now": QUIET_NIGHT}, ("send", MEMBER_SENDS, True, False)),
    "contact_by_call does not call for the care manager's step": (
        {"by_call": True, "recipient": "care_manager"}, ("send", MANAGER_SENDS, False, True)),
}


@pytest.mark.parametrize(("given", "expected"), CASES.values(), ids=CASES.keys())
def test_decide_step(given, expected):
    assert _summary(_decide(**given)) == expected


AXES = list(itertools.product(
    ("critical", "high", "medium", "low"), (True, False), (DAY, QUIET_NIGHT), (False, True), ("open", "acknowledged"),
    (None, 30), (False, True), ("member", "care_manager", "emergency_contacts"),
))


@pytest.mark.parametrize(("severity", "consent", "now", "snoozed", "status", "last_sent", "by_call", "recipient"),
                         AXES)
def test_every_combination_keeps_the_promises(severity, consent, now, snoozed, status, last_sent, by_call,
                                              recipient):
    decision = _decide(recipient=recipient, severity=severity, consent=consent, now=now, snoozed=snoozed,
                       status=status, last_sent_s_ago=last_sent, by_call=by_call)
    if status == "acknowledged":
        assert isinstance(decision, Stop)
        return
    if snoozed:
        assert decision == Defer(now + timedelta(minutes=10), "the alert is snoozed")
        return
    if severity == "critical":
        assert isinstance(decision, Send)  # never held by quiet hours or grouping
    if isinstance(decision, Send):
        if not consent and recipient != "care_manager":
            assert {d.status for d in decision.deliveries} == {"skipped"}
            assert all(d.reason == NO_CONSENT for d in decision.deliveries if d.target)
        assert decision.call_task == (recipient == "member" and by_call and consent)
        assert decision.escalates == (recipient != "member")
    else:
        assert isinstance(decision, Defer) and decision.until > now


def test_deliveries_carry_the_target_and_name():
    decision = _decide(recipient="emergency_contacts", severity="critical")
    assert decision.deliveries == (
        Delivery(to_role="emergency_contact", recipient_key="contact:0", recipient_name="Paul Meyer",
                 target="json://p/hook", channel="json", status="pending", reason=None),
        Delivery(to_role="emergency_contact", recipient_key="contact:1", recipient_name="Rita Roy", target="",
                 channel="none", status="skipped", reason="this contact has no outreach URL"),
    )


def test_defer_reasons_say_why():
    assert _decide(now=QUIET_NIGHT).reason == "the member's quiet hours, until 07:00 (Europe/Paris)"
    assert _decide(last_sent_s_ago=30).reason == "grouped: the recipient had a message less than 120 s ago"
    assert _decide(status="resolved").reason == "the alert was resolved before this step fell due"


@pytest.mark.parametrize(("member", "recipient", "expected"), [
    (replace(MEMBER, outreach_urls=()), "member",
     Delivery(to_role="member", recipient_key="member:m-1", recipient_name="Anna Meyer", target="", channel="none",
              status="skipped", reason="the member has no outreach URL")),
    (replace(MEMBER, outreach_urls=(), consent_outreach=False), "member",
     Delivery(to_role="member", recipient_key="member:m-1", recipient_name="Anna Meyer", target="", channel="none",
              status="skipped", reason=NO_CONSENT)),
    (replace(MEMBER, care_manager=None), "care_manager",
     Delivery(to_role="care_manager", recipient_key="care_manager:none", recipient_name="", target="",
              channel="none", status="skipped", reason="the member has no care manager")),
    (replace(MEMBER, care_manager=CareManagerFacts(id="cm-2", name="Lee")), "care_manager",
     Delivery(to_role="care_manager", recipient_key="care_manager:cm-2", recipient_name="Lee", target="",
              channel="none", status="skipped",
              reason="the care manager has no outreach URL; the alert waits in the console")),
    (replace(MEMBER, emergency_contacts=()), "emergency_contacts",
     Delivery(to_role="emergency_contact", recipient_key="contact:none", recipient_name="", target="",
              channel="none", status="skipped", reason="the member has no emergency contacts")),
])
def test_a_recipient_without_a_channel_is_one_skipped_delivery(member, recipient, expected):
    step = PlannedStep(step=2, recipient=recipient, kind="ladder", due_at=DAY)
    decision = decide_step(alert=_alert("critical"), step=step, member=member, now=DAY, last_sent_at=None,
                           group_interval_s=GROUP_S)
    assert decision.deliveries == (expected,)


def test_a_member_who_only_takes_calls_still_gets_the_call_task():
    member = replace(MEMBER, outreach_urls=(), contact_by_call=True)
    step = PlannedStep(step=1, recipient="member", kind="ladder", due_at=DAY)
    decision = decide_step(alert=_alert("high"), step=step, member=member, now=DAY, last_sent_at=None,
                           group_interval_s=GROUP_S)
    assert decision.call_task and decision.deliveries[0].channel == "none"


@pytest.mark.parametrize(("url", "channel"), [
    ("mailto://u:p@example.org", "mailto"), ("JSON://host/path", "json"), ("tgram://bot/chat", "tgram"),
    ("not a url", "unknown"), ("://x", "unknown"),
])
def test_channel_of(url, channel):
    assert channel_of(url) == channel
