"""What a change to an alert means: which transitions are allowed and what they do to the ladder.

Pure: `decide` returns the change; `alerts.actions` applies it to the row in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from vigil.timefmt import utc_text

Status = Literal["open", "acknowledged", "escalated", "resolved"]
STATUSES: tuple[str, ...] = ("open", "acknowledged", "escalated", "resolved")

Outcome = Literal["false_alarm", "member_ok", "assisted", "emergency_dispatched", "no_action_needed"]
OUTCOMES: tuple[str, ...] = ("false_alarm", "member_ok", "assisted", "emergency_dispatched", "no_action_needed")

SNOOZE_MINUTES_MAX = 1440


class ActionRefused(ValueError):
    """A change the alert's status does not allow; the message is the sentence the API answers 409 with."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledge:
    """Someone has seen the alert and is on it: the ladder stops."""

    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolve:
    """The alert is dealt with, with what came of it."""

    by: str
    outcome: str
    note: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AddNote:
    """A note in the alert's history; the only thing still allowed once it is resolved."""

    by: str
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Assign:
    """Give the alert to a care manager (or take it over)."""

    by: str
    care_manager_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalate:
    """Escalate by hand: the next step of the ladder falls due now."""

    by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Snooze:
    """Hold the ladder for a stated time (a known false alarm, someone already on the way)."""

    by: str
    minutes: int

    def __post_init__(self) -> None:
        if isinstance(self.minutes, bool) or not isinstance(self.minutes, int) \
                or not 1 <= self.minutes <= SNOOZE_MINUTES_MAX:
            raise ValueError(f"a snooze lasts 1 to {SNOOZE_MINUTES_MAX} minutes, not {self.minutes!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmOk:
    """The member's one-tap "I'm OK": resolves the alert as `member_ok`."""

    by: str = "member"


@dataclass(frozen=True, slots=True, kw_only=True)
class LadderEscalated:
    """The ladder ran a step past the member (system command)."""

    by: str = "vigil"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogCall:
    """A care manager called the member or a contact; recorded in the history only."""

    by: str
    outcome_text: str


Command = Acknowledge | Resolve | AddNote | Assign | Escalate | Snooze | ConfirmOk | LadderEscalated | LogCall


@dataclass(slots=True)
class AlertState:
    """The columns of an alert row that decide what a command may do."""

    status: str
    severity: str
    acknowledged_at: datetime | None = None
    assigned_to: str | None = None
    snoozed_until: datetime | None = None


@dataclass(frozen=True)
class Change:
    """What a command does to the alert: new status, columns to set, one history entry, ladder effects."""

    status: str
    updates: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    stops_ladder: bool = False
    escalate_now: bool = False


def stops_ladder(status: str) -> bool:
    """Whether no further ladder step should run for an alert in this status."""
    return status in ("acknowledged", "resolved")


def history_entry(action: str, at: datetime, **details: Any) -> dict[str, Any]:
    """One line of an alert's history, shaped as `alerts.event_decoding.history_entry`'s."""
    return {"at": utc_text(at), "action": action, **details}


def decide(state: AlertState, command: Command, now: datetime) -> Change:
    """What `command` does to an alert in `state` at `now`; `ActionRefused` when it is not allowed."""
    status = state.status
    if isinstance(command, LadderEscalated):
        # The ladder never fails: a step that ran after someone acted changes nothing but the record.
        if status == "open":
            return Change("escalated", {}, history_entry("escalated", now, by=command.by,
                                                         reason="no answer before the next step of the ladder"))
        return Change(status, {}, history_entry("ladder_continued", now, by=command.by))
    if isinstance(command, AddNote):
        return Change(status, {}, history_entry("note_added", now, by=command.by, text=command.text))
    if status == "resolved":
        raise ActionRefused(f"The alert is resolved already, so it cannot be {_PAST[type(command)]}; "
                            "only a note can be added to it")
    match command:
        case Acknowledge(by=by):
            if status == "acknowledged":
                since = f" at {utc_text(state.acknowledged_at)}" if state.acknowledged_at else ""
                raise ActionRefused(f"The alert was acknowledged already{since}")
            return Change("acknowledged", {"acknowledged_at": now, "acknowledged_by": by},
                          history_entry("acknowledged", now, by=by), stops_ladder=True)
        case Resolve(by=by, outcome=outcome, note=note):
            return _resolved(now, by, outcome, note)
        case ConfirmOk(by=by):
            return _resolved(now, by, "member_ok", None, via="reply_link")
        case Escalate(by=by):
            # Escalating by hand overrides a snooze: "now" means now.
            return Change("escalated", {"snoozed_until": None}, history_entry("escalated", now, by=by),
                          escalate_now=True)
        case Snooze(by=by, minutes=minutes):
            until = now + timedelta(minutes=minutes)
            return Change(status, {"snoozed_until": until},
                          history_entry("snoozed", now, by=by, minutes=minutes, until=utc_text(until)))
        case Assign(by=by, care_manager_id=care_manager_id):
            return Change(status, {"assigned_to": care_manager_id},
                          history_entry("assigned", now, by=by, to=care_manager_id, previously=state.assigned_to))
        case LogCall(by=by, outcome_text=text):
            return Change(status, {}, history_entry("call_logged", now, by=by, text=text))
    raise TypeError(f"not an alert command: {command!r}")


def _resolved(now: datetime, by: str, outcome: str, note: str | None, **details: Any) -> Change:
    entry = history_entry("resolved", now, by=by, outcome=outcome, **details)
    if note:
        entry["note"] = note
    return Change("resolved", {"outcome": outcome, "resolved_at": now}, entry, stops_ladder=True)


# For the refusal sentence.
_PAST: dict[type, str] = {
    Acknowledge: "acknowledged",
    Resolve: "resolved again",
    ConfirmOk: "resolved again",
    Escalate: "escalated",
    Snooze: "snoozed",
    Assign: "assigned",
    LogCall: "given a call record",
}
