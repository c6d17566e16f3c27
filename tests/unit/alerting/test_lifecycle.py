"""Every alert command against every status: what is allowed, what it changes, what it does to the ladder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.alerting.lifecycle import (
    Acknowledge,
    ActionRefused,
    AddNote,
    AlertState,
    Assign,
    ConfirmOk,
    Escalate,
    LadderEscalated,
    LogCall,
    Resolve,
    Snooze,
    decide,
    stops_ladder,
)

NOW = datetime(2025, 3, 29, 21, 0, tzinfo=UTC)
BY = "care_manager:cm-1"

COMMANDS = {
    "ack": Acknowledge(by=BY),
    "resolve": Resolve(by=BY, outcome="assisted", note="neighbour helped"),
    "note": AddNote(by=BY, text="called, no answer"),
    "assign": Assign(by=BY, care_manager_id="cm-2"),
    "escalate": Escalate(by=BY),
    "snooze": Snooze(by=BY, minutes=30),
    "confirm_ok": ConfirmOk(),
    "ladder": LadderEscalated(),
    "call": LogCall(by=BY, outcome_text="member fine, dizzy earlier"),
}
REFUSED = "refused"

# status -> command -> (new status, stops the ladder, escalates now)
TABLE = {
    "open": {
        "ack": ("acknowledged", True, False), "resolve": ("resolved", True, False), "note": ("open", False, False),
        "assign": ("open", False, False), "escalate": ("escalated", False, True), "snooze": ("open", False, False),
        "confirm_ok": ("resolved", True, False), "ladder": ("escalated", False, False),
        "call": ("open", False, False),
    },
    "acknowledged": {
        "ack": REFUSED, "resolve": ("resolved", True, False), "note": ("acknowledged", False, False),
        "assign": ("acknowledged", False, False), "escalate": ("escalated", False, True),
        "snooze": ("acknowledged", False, False), "confirm_ok": ("resolved", True, False),
        "ladder": ("acknowledged", False, False), "call": ("acknowledged", False, False),
    },
    "escalated": {
        "ack": ("acknowledged", True, False), "resolve": ("resolved", True, False),
        "note": ("escalated", False, False), "assign": ("escalated", False, False),
        "escalate": ("escalated", False, True), "snooze": ("escalated", False, False),
        "confirm_ok": ("resolved", True, False), "ladder": ("escalated", False, False),
        "call": ("escalated", False, False),
    },
    "resolved": {
        "ack": REFUSED, "resolve": REFUSED, "note": ("resolved", False, False), "assign": REFUSED,
        "escalate": REFUSED, "snooze": REFUSED, "confirm_ok": REFUSED, "ladder": ("resolved", False, False),
        "call": REFUSED,
    },
}
CASES = [(status, name, expected) for status, row in TABLE.items() for name, expected in row.items()]


def _state(status: str) -> AlertState:
    acknowledged_at = NOW - timedelta(minutes=5) if status == "acknowledged" else None
    return AlertState(status=status, severity="critical", acknowledged_at=acknowledged_at, assigned_to="cm-1")


def test_the_table_covers_every_command_in_every_status():
    assert all(set(row) == set(COMMANDS) for row in TABLE.values())
    assert len(CASES) == 36


@pytest.mark.parametrize(("status", "name", "expected"), CASES)
def test_command_in_status(status, name, expected):
    command = COMMANDS[name]
    if expected == REFUSED:
        with pytest.raises(ActionRefused):
            decide(_state(status), command, NOW)
        return
    change = decide(_state(status), command, NOW)
    assert (change.status, change.stops_ladder, change.escalate_now) == expected
    assert change.history["at"] == "2025-03-29T21:00:00Z"
    assert change.history["by"] == command.by


@pytest.mark.parametrize(("command", "updates", "history"), [
    (Acknowledge(by=BY), {"acknowledged_at": NOW, "acknowledged_by": BY},
     {"at": "2025-03-29T21:00:00Z", "action": "acknowledged", "by": BY}),
    (Resolve(by=BY, outcome="false_alarm", note="sensor knocked"), {"outcome": "false_alarm", "resolved_at": NOW},
     {"at": "2025-03-29T21:00:00Z", "action": "resolved", "by": BY, "outcome": "false_alarm",
      "note": "sensor knocked"}),
    (Resolve(by=BY, outcome="assisted"), {"outcome": "assisted", "resolved_at": NOW},
     {"at": "2025-03-29T21:00:00Z", "action": "resolved", "by": BY, "outcome": "assisted"}),
    (ConfirmOk(), {"outcome": "member_ok", "resolved_at": NOW},
     {"at": "2025-03-29T21:00:00Z", "action": "resolved", "by": "member", "outcome": "member_ok",
      "via": "reply_link"}),
    (AddNote(by=BY, text="left a voicemail"), {},
     {"at": "2025-03-29T21:00:00Z", "action": "note_added", "by": BY, "text": "left a voicemail"}),
    (Assign(by="admin:env", care_manager_id="cm-9"), {"assigned_to": "cm-9"},
     {"at": "2025-03-29T21:00:00Z", "action": "assigned", "by": "admin:env", "to": "cm-9", "previously": "cm-1"}),
    (Escalate(by=BY), {"snoozed_until": None}, {"at": "2025-03-29T21:00:00Z", "action": "escalated", "by": BY}),
    (Snooze(by=BY, minutes=90), {"snoozed_until": NOW + timedelta(minutes=90)},
     {"at": "2025-03-29T21:00:00Z", "action": "snoozed", "by": BY, "minutes": 90, "until": "2025-03-29T22:30:00Z"}),
    (LogCall(by=BY, outcome_text="no answer"), {},
     {"at": "2025-03-29T21:00:00Z", "action": "call_logged", "by": BY, "text": "no answer"}),
    (LadderEscalated(), {},
     {"at": "2025-03-29T21:00:00Z", "action": "escalated", "by": "vigil",
      "reason": "no answer before the next step of the ladder"}),
])
def test_what_an_open_alert_records(command, updates, history):
    change = decide(_state("open"), command, NOW)
    assert change.updates == updates
    assert change.history == history


def test_the_ladder_running_on_past_an_acknowledgement_only_leaves_a_record():
    change = decide(_state("acknowledged"), LadderEscalated(), NOW)
    assert change.updates == {}
    assert change.history == {"at": "2025-03-29T21:00:00Z", "action": "ladder_continued", "by": "vigil"}


@pytest.mark.parametrize(("status", "command", "sentence"), [
    ("acknowledged", Acknowledge(by=BY), "The alert was acknowledged already at 2025-03-29T20:55:00Z"),
    ("resolved", Acknowledge(by=BY),
     "The alert is resolved already, so it cannot be acknowledged; only a note can be added to it"),
    ("resolved", Resolve(by=BY, outcome="assisted"),
     "The alert is resolved already, so it cannot be resolved again; only a note can be added to it"),
    ("resolved", ConfirmOk(),
     "The alert is resolved already, so it cannot be resolved again; only a note can be added to it"),
    ("resolved", Snooze(by=BY, minutes=5),
     "The alert is resolved already, so it cannot be snoozed; only a note can be added to it"),
])
def test_refusals_say_why(status, command, sentence):
    with pytest.raises(ActionRefused) as refused:
        decide(_state(status), command, NOW)
    assert str(refused.value) == sentence


def test_acknowledging_twice_without_a_recorded_time_still_refuses():
    with pytest.raises(ActionRefused, match=r"^The alert was acknowledged already$"):
        decide(AlertState(status="acknowledged", severity="high"), Acknowledge(by=BY), NOW)


@pytest.mark.parametrize("minutes", [0, -5, 1441, True, 2.5])
def test_a_snooze_lasts_one_minute_to_a_day(minutes):
    with pytest.raises(ValueError, match="a snooze lasts 1 to 1440 minutes"):
        Snooze(by=BY, minutes=minutes)


@pytest.mark.parametrize("minutes", [1, 1440])
def test_snooze_bounds_are_allowed(minutes):
    assert decide(_state("open"), Snooze(by=BY, minutes=minutes), NOW).updates == {
        "snoozed_until": NOW + timedelta(minutes=minutes)}


def test_an_unknown_outcome_is_refused_when_the_command_is_made():
    with pytest.raises(ValueError, match="outcome 'fixed' is not one of false_alarm, member_ok"):
        Resolve(by=BY, outcome="fixed")


@pytest.mark.parametrize(("status", "stops"), [
    ("open", False), ("acknowledged", True), ("escalated", False), ("resolved", True)])
def test_stops_ladder(status, stops):
    assert stops_ladder(status) is stops
