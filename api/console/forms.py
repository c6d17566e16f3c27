"""The console's action forms: a posted form's fields checked with pydantic and turned into a lifecycle command.

Forms are posted as `application/x-www-form-urlencoded` (no file uploads), read straight from the
body. A form that does not check out becomes one sentence for the page, never an error page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from api.schemas import DEVICE_ID_PATTERN
from vigil.alerting.lifecycle import (
    SNOOZE_MINUTES_MAX,
    Acknowledge,
    AddNote,
    Assign,
    Command,
    Escalate,
    LogCall,
    Resolve,
    Snooze,
)

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class FormProblem(ValueError):
    """A form that cannot be acted on; the message is the sentence the page shows."""


class _Form(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Empty(_Form):
    pass


class _Resolve(_Form):
    outcome: Literal["member_ok", "assisted", "emergency_dispatched", "false_alarm", "no_action_needed"]
    note: OptionalText = ""


class _Note(_Form):
    text: Text


class _Assign(_Form):
    care_manager_id: Annotated[str, StringConstraints(strip_whitespace=True, pattern=DEVICE_ID_PATTERN)]


class _Snooze(_Form):
    minutes: int = Field(ge=1, le=SNOOZE_MINUTES_MAX)


class _Call(_Form):
    text: Text


# action in the URL -> (its form, the command it makes, what the page says when it worked)
ACTIONS: dict[str, tuple[type[_Form], Callable[..., Command], str]] = {
    "acknowledge": (_Empty, lambda f, by: Acknowledge(by=by), "Acknowledged: the ladder has stopped."),
    "resolve": (_Resolve, lambda f, by: Resolve(by=by, outcome=f.outcome, note=f.note or None), "Resolved."),
    "note": (_Note, lambda f, by: AddNote(by=by, text=f.text), "Note added."),
    "assign": (_Assign, lambda f, by: Assign(by=by, care_manager_id=f.care_manager_id), "Assigned."),
    "snooze": (_Snooze, lambda f, by: Snooze(by=by, minutes=f.minutes), "Snoozed."),
    "escalate": (_Empty, lambda f, by: Escalate(by=by), "Escalated: the next step of the ladder is due now."),
    "call": (_Call, lambda f, by: LogCall(by=by, outcome_text=f.text), "Call logged."),
}
_FIELD_WORDS = {
    "outcome": "Choose an outcome",
    "text": "Write something first",
    "care_manager_id": "Give a care manager's id (letters, digits, - and _)",
    "minutes": f"Snooze for 1 to {SNOOZE_MINUTES_MAX} minutes",
    "note": "Keep the note under 2000 characters",
}


def form_fields(body: bytes) -> dict[str, str]:
    """The fields of a URL-encoded form body (the first value of each)."""
    try:
        text = body.decode()
    except UnicodeDecodeError as e:
        raise FormProblem("The form could not be read; reload the page and try again.") from e
    return {name: values[0] for name, values in parse_qs(text, keep_blank_values=True).items()}


def command_for(action: str, fields: dict[str, str], by: str) -> tuple[Command, str]:
    """The command an action's form asks for, and the sentence to show once it is done."""
    form_type, make, done = ACTIONS[action]
    try:
        form = form_type.model_validate(fields)
    except ValidationError as e:
        where = str(e.errors()[0]["loc"][0]) if e.errors()[0]["loc"] else ""
        raise FormProblem(f"{_FIELD_WORDS.get(where, 'The form is not complete')}.") from e
    return make(form, by), done
