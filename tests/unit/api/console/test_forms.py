"""Action forms: fields checked, turned into the lifecycle's commands, or a sentence for the page."""

from __future__ import annotations

import pytest

from api.console.forms import FormProblem, command_for, form_fields
from vigil.alerting.lifecycle import Acknowledge, AddNote, Assign, Escalate, LogCall, Resolve, Snooze

BY = "care_manager:cm-1"


@pytest.mark.parametrize(
    ("action", "fields", "command"),
    [
        ("acknowledge", {}, Acknowledge(by=BY)),
        ("escalate", {"ignored": "x"}, Escalate(by=BY)),
        ("resolve", {"outcome": "false_alarm", "note": "  "}, Resolve(by=BY, outcome="false_alarm", note=None)),
        ("resolve", {"outcome": "assisted", "note": " Up. "}, Resolve(by=BY, outcome="assisted", note="Up.")),
        ("note", {"text": "Daughter on her way."}, AddNote(by=BY, text="Daughter on her way.")),
        ("assign", {"care_manager_id": " cm-2 "}, Assign(by=BY, care_manager_id="cm-2")),
        ("snooze", {"minutes": "45"}, Snooze(by=BY, minutes=45)),
        ("call", {"text": "No answer.", "reached": "no"}, LogCall(by=BY, outcome_text="No answer.")),
    ],
)
def test_a_complete_form_makes_its_command(action: str, fields: dict, command: object) -> None:
    assert command_for(action, fields, BY)[0] == command


@pytest.mark.parametrize(
    ("action", "fields", "sentence"),
    [
        ("resolve", {}, "Choose an outcome."),
        ("resolve", {"outcome": "fine"}, "Choose an outcome."),
        ("resolve", {"outcome": "member_ok", "note": "x" * 2001}, "Keep the note under 2000 characters."),
        ("note", {"text": "   "}, "Write something first."),
        ("call", {}, "Write something first."),
        ("assign", {"care_manager_id": "cm 2"}, "Give a care manager's id (letters, digits, - and _)."),
        ("snooze", {"minutes": "0"}, "Snooze for 1 to 1440 minutes."),
        ("snooze", {"minutes": "1441"}, "Snooze for 1 to 1440 minutes."),
        ("snooze", {"minutes": "soon"}, "Snooze for 1 to 1440 minutes."),
    ],
)
def test_an_incomplete_form_is_one_sentence(action: str, fields: dict, sentence: str) -> None:
    with pytest.raises(FormProblem, match=f"^{sentence.replace('(', '[(]').replace(')', '[)]')}$"):
        command_for(action, fields, BY)


def test_form_bodies_are_read_as_url_encoded_fields() -> None:
    assert form_fields(b"outcome=member_ok&note=Fine%2C+thanks&note=second&empty=") == {
        "outcome": "member_ok", "note": "Fine, thanks", "empty": ""}
    with pytest.raises(FormProblem):
        form_fields(b"\xff\xfe")
