"""The escalation ladder end to end: alerts stored as the alerts consumer stores them, a real scheduler
process (`python -m scheduler`) running the steps, and a real HTTP receiver counting what arrives when.

A short ladder (member at 0 s, care manager at 2 s, emergency contacts at 4 s) keeps the stories to
seconds; each arrival is checked against its step's due time (CONTRACT §5 and issue 7: within 2 s).
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import (
    JsonReceiver,
    SchedulerProcess,
    act_now,
    add_care_manager,
    add_member,
    alert_event,
    apply_events,
    clear_alert,
    raise_alert,
    reply_ok,
    scheduler_env,
    sql,
    wait_for,
)
from vigil.alerting.lifecycle import Acknowledge

pytestmark = pytest.mark.infra

ESCALATION = {
    "critical": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 2},
                 {"to": "emergency_contacts", "after_s": 4}],
    "high": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 2}],
    "medium": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 0}],
    "low": [{"to": "member", "after_s": 0}],
}
GROUP_INTERVAL_S = 3
REPEAT_S = 60
ON_TIME_S = 2.0
PATHS = {"member": ("member",), "care_manager": ("cm",), "emergency_contacts": ("contact0", "contact1")}


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("ladder")


@pytest.fixture(scope="module")
def receiver():
    receiver = JsonReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def scheduler(database_url: str, tmp_path_factory: pytest.TempPathFactory):
    state_dir: Path = tmp_path_factory.mktemp("scheduler")
    env = scheduler_env(database_url, state_dir, escalation=ESCALATION, group_interval_s=GROUP_INTERVAL_S,
                        repeat_s=REPEAT_S)
    process = SchedulerProcess("scheduler", env, state_dir).start()
    try:
        wait_for(lambda: "ladder planner listening" in process.log_text()
                 and "outreach sender listening" in process.log_text(), 30, what="the scheduler to lead")
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()[-4000:]


@pytest.fixture(scope="module")
def lateness():
    """Every step's lateness (due → arrival at the receiver), reported when the module ends."""
    measured: list[float] = []
    yield measured
    if measured:
        ordered = sorted(measured)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        print(f"\nladder step lateness (due -> arrival), {len(ordered)} arrivals: "
              f"median {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {ordered[-1] * 1000:.0f} ms")


def people(database_url: str, receiver: JsonReceiver, key: str, **member) -> str:
    """A member `key` with a care manager and two emergency contacts, each on their own receiver path."""
    add_care_manager(database_url, f"cm-{key}", [receiver.url(f"{key}/cm")])
    contacts = [
        {"name": "Paul Berger", "phone": "+33600000001", "relation": "son",
         "outreach_url": receiver.url(f"{key}/contact0")},
        {"name": "Lea Berger", "phone": "+33600000002", "relation": "daughter",
         "outreach_url": receiver.url(f"{key}/contact1")},
    ]
    return add_member(database_url, key, urls=[receiver.url(f"{key}/member")], care_manager_id=f"cm-{key}",
                      contacts=contacts, **member)


def steps(database_url: str, alert_id: str) -> list[tuple]:
    return sql(database_url, "SELECT step, recipient, kind, state, due_at, note FROM alert_steps WHERE alert_id = %s "
               "ORDER BY step", (alert_id,))


def on_time(receiver: JsonReceiver, key: str, due: datetime, recipient: str, lateness: list[float]) -> None:
    """Each of `recipient`'s channels got exactly one message, within `ON_TIME_S` of `due` and not before."""
    for path in PATHS[recipient]:
        [arrival] = receiver.at(f"{key}/{path}")
        late = (arrival.at - due).total_seconds()
        lateness.append(late)
        assert 0 <= late <= ON_TIME_S, f"{recipient} ({path}) {late:.3f} s after its step was due"


def test_a_critical_alert_walks_down_the_ladder_on_time(database_url, receiver, scheduler, lateness):
    people(database_url, receiver, "L1")
    alert = raise_alert(database_url, "L1", escalation=ESCALATION)

    wait_for(lambda: receiver.at("L1/contact0") and receiver.at("L1/contact1"), 10, what="the contacts' messages")
    time.sleep(1)  # room for anything sent twice to show
    ladder = steps(database_url, alert.alert_id)
    assert [(s[0], s[1], s[2], s[3]) for s in ladder] == [
        (1, "member", "ladder", "done"), (2, "care_manager", "ladder", "done"),
        (3, "emergency_contacts", "ladder", "done"), (4, "emergency_contacts", "repeat", "pending")]
    for _, recipient, _, _, due, _ in ladder[:3]:
        on_time(receiver, "L1", due, recipient, lateness)
    # Nobody acknowledged: the last step's recipients are told again after VIGIL_REPEAT_S.
    assert ladder[3][4] == ladder[2][4] + timedelta(seconds=REPEAT_S)

    [member] = receiver.at("L1/member")
    [manager] = receiver.at("L1/cm")
    [contact] = receiver.at("L1/contact0")
    assert "Tap to tell us you're OK: https://vigil.example.org/r/" in member.message
    assert "148 bpm" in member.message and "148 bpm" in manager.message
    assert "148 bpm" not in contact.message and "bpm" not in contact.message  # contacts learn the kind of event only
    assert "Anna Berger (the member)" in manager.message
    assert f"https://vigil.example.org/alerts/{alert.alert_id}" in manager.message
    assert "Claire Martin (care manager)" in contact.message and "Anna Berger (the member)" in contact.message
    [(status, history)] = sql(database_url, "SELECT status, history FROM alerts WHERE id = %s", (alert.alert_id,))
    assert status == "escalated"
    assert [h["action"] for h in history] == ["raised", "escalated", "ladder_continued"]


def test_an_acknowledgement_stops_the_ladder(database_url, receiver, scheduler):
    people(database_url, receiver, "L2")
    alert = raise_alert(database_url, "L2", escalation=ESCALATION)
    wait_for(lambda: receiver.at("L2/member"), 5, what="the member's message")

    act_now(database_url, alert.alert_id, Acknowledge(by="care_manager:cm-L2"), ESCALATION)
    time.sleep(4 + ON_TIME_S)  # past the contacts' step
    assert receiver.at("L2/cm") == [] and receiver.at("L2/contact0") == []
    assert [(s[0], s[3]) for s in steps(database_url, alert.alert_id)] == [(1, "done"), (2, "stopped"), (3, "stopped")]


def test_i_am_ok_through_the_reply_link_stops_the_ladder_and_books_a_check_in(database_url, receiver, scheduler):
    people(database_url, receiver, "L3")
    alert = raise_alert(database_url, "L3", escalation=ESCALATION)
    [member] = wait_for(lambda: receiver.at("L3/member"), 5, what="the member's message")
    token = re.search(r"/r/([A-Za-z0-9_-]+)", member.message).group(1)

    assert reply_ok(database_url, token)["status"] == "resolved"
    time.sleep(4 + ON_TIME_S)
    assert receiver.at("L3/cm") == [] and receiver.at("L3/contact0") == []
    assert [s[3] for s in steps(database_url, alert.alert_id)] == ["done", "stopped", "stopped"]
    # A resolved critical alert: the care manager checks in the next day at 10:00, the member's time.
    [(kind, due_at, cm)] = wait_for(lambda: sql(database_url, "SELECT kind, due_at, care_manager_id FROM tasks "
                                                "WHERE alert_id = %s", (alert.alert_id,)), 10, what="the check-in")
    assert (kind, cm) == ("check_in", "cm-L3")
    local = due_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (10, 0)
    assert timedelta(0) < due_at - datetime.now(UTC) < timedelta(days=2)


def test_quiet_hours_hold_a_non_critical_message_to_the_member_and_never_a_critical_one(
        database_url, receiver, scheduler, lateness):
    now = datetime.now(UTC)
    quiet = {"start": f"{now - timedelta(hours=1):%H:%M}", "end": f"{now + timedelta(hours=1):%H:%M}"}
    people(database_url, receiver, "Q1", quiet_hours=quiet, timezone="UTC")
    people(database_url, receiver, "Q2", quiet_hours=quiet, timezone="UTC")
    high = raise_alert(database_url, "Q1", escalation=ESCALATION, severity="high", alert_type="low_spo2",
                       evidence={"minutes": [{"mean": 88}]})
    critical = raise_alert(database_url, "Q2", escalation=ESCALATION)

    [row] = wait_for(lambda: sql(database_url, "SELECT id, status, reason FROM outreach WHERE alert_id = %s "
                                 "AND to_role = 'member'", (high.alert_id,)), 5, what="the held row")
    assert row[1] == "held" and "quiet hours" in row[2]
    wait_for(lambda: receiver.at("Q1/cm"), 5, what="the care manager's message (never held)")
    wait_for(lambda: receiver.at("Q2/member"), 5, what="the critical message to the member")
    ladder = steps(database_url, critical.alert_id)
    on_time(receiver, "Q2", ladder[0][4], "member", lateness)
    assert receiver.at("Q1/member") == []
    [(due_at,)] = sql(database_url, "SELECT due_at FROM alert_steps WHERE alert_id = %s AND step = 1",
                      (high.alert_id,))
    assert abs((due_at - (now + timedelta(hours=1))).total_seconds()) < 60  # falls due as the quiet hours end

    # The quiet hours end (brought forward here rather than waited for): the held message goes, same row.
    sql(database_url, "UPDATE members SET quiet_hours = NULL WHERE id = 'Q1'")
    sql(database_url, "UPDATE alert_steps SET due_at = now() WHERE alert_id = %s AND step = 1", (high.alert_id,))
    sql(database_url, "SELECT pg_notify('vigil_ladder', %s)", (high.alert_id,))
    # The row, not the arrival: the receiver sees the POST before the sender records it as sent.
    wait_for(lambda: sql(database_url, "SELECT id, status FROM outreach WHERE alert_id = %s AND to_role = 'member'",
                         (high.alert_id,)) == [(row[0], "sent")], 5, what="the held message, released")
    assert len(receiver.at("Q1/member")) == 1


def test_a_held_message_whose_ladder_stops_is_recorded_as_never_sent(database_url, receiver, scheduler):
    now = datetime.now(UTC)
    quiet = {"start": f"{now - timedelta(hours=1):%H:%M}", "end": f"{now + timedelta(hours=1):%H:%M}"}
    people(database_url, receiver, "Q3", quiet_hours=quiet, timezone="UTC")
    alert = raise_alert(database_url, "Q3", escalation=ESCALATION, severity="high", alert_type="low_spo2",
                        evidence={})
    wait_for(lambda: sql(database_url, "SELECT status FROM outreach WHERE alert_id = %s", (alert.alert_id,))
             == [("held",)], 5, what="the held row")
    act_now(database_url, alert.alert_id, Acknowledge(by="care_manager:cm-Q3"), ESCALATION)
    [(status, reason)] = wait_for(
        lambda: [r for r in sql(database_url, "SELECT status, reason FROM outreach WHERE alert_id = %s "
                                "AND to_role = 'member'", (alert.alert_id,)) if r[0] != "held"], 10,
        what="the held row settled")
    assert status == "skipped" and reason.startswith("not sent: acknowledged by care_manager:cm-Q3")
    assert receiver.at("Q3/member") == []


def test_without_consent_neither_the_member_nor_the_contacts_are_messaged(database_url, receiver, scheduler):
    people(database_url, receiver, "C1", consent_outreach=False)
    alert = raise_alert(database_url, "C1", escalation=ESCALATION)
    wait_for(lambda: receiver.at("C1/cm"), 5, what="the care manager's message")
    time.sleep(2 + ON_TIME_S)
    assert receiver.at("C1/member") == [] and receiver.at("C1/contact0") == [] and receiver.at("C1/contact1") == []
    rows = sql(database_url, "SELECT step, to_role, status, reason FROM outreach WHERE alert_id = %s ORDER BY step, id",
               (alert.alert_id,))
    refusal = "the member has not consented to outreach"
    assert rows == [(1, "member", "skipped", refusal), (2, "care_manager", "sent", None),
                    (3, "emergency_contact", "skipped", refusal), (3, "emergency_contact", "skipped", refusal)]


def test_a_member_reached_by_phone_gets_a_call_task_at_their_step(database_url, receiver, scheduler):
    people(database_url, receiver, "P1", contact_by_call=True)
    alert = raise_alert(database_url, "P1", escalation=ESCALATION, severity="high")
    wait_for(lambda: receiver.at("P1/member"), 5, what="the member's message")
    [(kind, step, cm, reason)] = sql(database_url, "SELECT kind, step, care_manager_id, reason FROM tasks "
                                     "WHERE alert_id = %s", (alert.alert_id,))
    assert (kind, step, cm) == ("call", 1, "cm-P1")
    assert "+33611223344" in reason


def test_further_alerts_within_the_group_interval_go_into_one_message(database_url, receiver, scheduler):
    people(database_url, receiver, "G1")
    first = raise_alert(database_url, "G1", escalation=ESCALATION, severity="high", alert_type="water_leak",
                        evidence={})
    wait_for(lambda: receiver.at("G1/member"), 5, what="the first message")
    second = raise_alert(database_url, "G1", escalation=ESCALATION, severity="high", alert_type="freeze_risk",
                         evidence={})
    third = raise_alert(database_url, "G1", escalation=ESCALATION, severity="high", alert_type="overheat",
                        evidence={})

    wait_for(lambda: len(receiver.at("G1/member")) == 2 and len(receiver.at("G1/cm")) == 2, 15,
             what="one grouped message to each recipient")
    time.sleep(GROUP_INTERVAL_S + 1)
    members, managers = receiver.at("G1/member"), receiver.at("G1/cm")
    assert len(members) == 2 and len(managers) == 2
    assert "2 things" in members[1].title
    assert "frozen pipes" in members[1].message and "very high temperature" in members[1].message
    # Not before the group interval after the first message.
    assert (members[1].at - members[0].at).total_seconds() >= GROUP_INTERVAL_S - 0.1
    rows = sql(database_url, "SELECT alert_id::text, id, grouped_into, status FROM outreach WHERE to_role = 'member' "
               "AND alert_id IN (%s, %s)", (second.alert_id, third.alert_id))
    carriers = [r for r in rows if r[2] is None]
    riders = [r for r in rows if r[2] is not None]
    assert len(carriers) == 1 and len(riders) == 1 and riders[0][2] == carriers[0][1]
    assert {r[3] for r in rows} == {"sent"}
    assert first.alert_id not in {r[0] for r in rows}


def test_an_alert_nobody_acknowledges_is_renotified_until_someone_does(database_url, receiver, scheduler):
    people(database_url, receiver, "R1")
    alert = raise_alert(database_url, "R1", escalation=ESCALATION, severity="low", alert_type="low_battery",
                        evidence={"peak": 9})
    wait_for(lambda: receiver.at("R1/member"), 5, what="the first message")
    [(_, _, kind, state, due, _)] = wait_for(
        lambda: [s for s in steps(database_url, alert.alert_id) if s[0] == 2], 5, what="the repeat step")
    assert (kind, state) == ("repeat", "pending")
    assert due == steps(database_url, alert.alert_id)[0][4] + timedelta(seconds=REPEAT_S)

    sql(database_url, "UPDATE alert_steps SET due_at = now() WHERE alert_id = %s AND step = 2", (alert.alert_id,))
    sql(database_url, "SELECT pg_notify('vigil_ladder', %s)", (alert.alert_id,))
    wait_for(lambda: len(receiver.at("R1/member")) == 2, 5, what="the re-notification")
    assert sql(database_url, "SELECT step, purpose, status FROM outreach WHERE alert_id = %s ORDER BY step",
               (alert.alert_id,)) == [(1, "alert", "sent"), (2, "repeat", "sent")]
    wait_for(lambda: len(steps(database_url, alert.alert_id)) == 3, 5, what="the next repeat")

    act_now(database_url, alert.alert_id, Acknowledge(by="care_manager:cm-R1"), ESCALATION)
    assert [s[3] for s in steps(database_url, alert.alert_id)] == ["done", "done", "stopped"]


def test_a_condition_that_clears_stops_the_ladder_and_brings_the_follow_ups(database_url, receiver, scheduler):
    people(database_url, receiver, "F1")
    alert = raise_alert(database_url, "F1", escalation=ESCALATION, alert_type="water_leak", opens_incident=True,
                        evidence={"span_s": 600})
    wait_for(lambda: receiver.at("F1/member"), 5, what="the member's message")
    clear_alert(database_url, alert)

    [tip] = wait_for(lambda: [a for a in receiver.at("F1/member") if "shut-off valve" in a.title], 10,
                     what="the prevention tip")
    assert "main shut-off valve" in tip.message
    time.sleep(4 + ON_TIME_S - 1)
    assert receiver.at("F1/cm") == [] and receiver.at("F1/contact0") == []
    assert [(s[3], s[5]) for s in steps(database_url, alert.alert_id)][1:] == [
        ("stopped", "the condition cleared"), ("stopped", "the condition cleared")]
    assert sql(database_url, "SELECT kind FROM tasks WHERE alert_id = %s", (alert.alert_id,)) == [("check_in",)]
    assert sql(database_url, "SELECT step, purpose, status FROM outreach WHERE alert_id = %s AND purpose = 'tip'",
               (alert.alert_id,)) == [(0, "tip", "sent")]


def test_a_severity_that_rises_brings_the_higher_ladder(database_url, receiver, scheduler, lateness):
    people(database_url, receiver, "S1")
    raised = raise_alert(database_url, "S1", escalation=ESCALATION, severity="high", alert_type="low_spo2",
                         evidence={"minutes": [{"mean": 89}]})
    wait_for(lambda: receiver.at("S1/member"), 5, what="the member's message")
    update = alert_event("S1", "updated", alert_type="low_spo2", severity="critical",
                         triggered_ms=raised.triggered_at_ms, evidence={"minutes": [{"mean": 84}]})
    assert apply_events(database_url, [update], ESCALATION) == ["updated"]

    wait_for(lambda: receiver.at("S1/contact0") and receiver.at("S1/contact1"), 10, what="the contacts' step")
    ladder = steps(database_url, raised.alert_id)
    assert [(s[0], s[1], s[3]) for s in ladder[:3]] == [
        (1, "member", "done"), (2, "care_manager", "done"), (3, "emergency_contacts", "done")]
    on_time(receiver, "S1", ladder[2][4], "emergency_contacts", lateness)
    assert len(receiver.at("S1/member")) == 1  # the member, told already, is not told again
