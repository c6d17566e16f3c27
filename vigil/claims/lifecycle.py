"""Where a claim may go next: confirmation, delivery, giving up, and the insurer's answers.

Pure: each function returns the change (new status, one history entry) or None when nothing changes;
`vigil.storage.claims` applies it to the row in one transaction. The decisions:

- A claim is confirmed once, from `prefilled` only; the member is not told (they just did it).
- A delivery makes a `confirmed` or `failed` claim `submitted`; once the insurer has answered, a late
  delivery changes nothing (None).
- Giving up makes a `confirmed` claim `failed`; any other status stays (None).
- A `failed` claim may be sent again (someone fixed the insurer's side): it is `confirmed` once more,
  and its delivery starts over. The member is told when it is delivered, not now.
- The insurer's answer:
  - The same answer again (same status, no new claim number, no new note) is a no-op (None): insurers
    retry their callbacks.
  - `accepted` (or any answer) may carry the insurer's claim number; an answer without one keeps the
    known number.
  - `paid` is final: any other answer after it is refused.
  - `rejected` may move to `accepted` or `needs_info` (an appeal) but not straight to `paid`.
  - A claim never sent (`prefilled`) cannot be answered: refused.
  - `confirmed` and `failed` claims accept answers: the insurer got a delivery whose answer we lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigil.timefmt import utc_text

STATUSES = ("prefilled", "confirmed", "submitted", "accepted", "needs_info", "rejected", "paid", "failed")
INSURER_STATUSES = ("accepted", "needs_info", "rejected", "paid")

# The statuses that mean the insurer has answered: a delivery or a give-up after them changes nothing.
_ANSWERED = frozenset(INSURER_STATUSES)

# What the insurer may answer from each status their answer can follow; the same status again is an update
# (a new note or claim number) or a no-op, except after `paid`.
_INSURER_MOVES: dict[str, frozenset[str]] = {
    "confirmed": frozenset(INSURER_STATUSES),
    "failed": frozenset(INSURER_STATUSES),
    "submitted": frozenset(INSURER_STATUSES),
    "accepted": frozenset(INSURER_STATUSES),
    "needs_info": frozenset(INSURER_STATUSES),
    "rejected": frozenset({"accepted", "needs_info"}),
    "paid": frozenset(),
}


class StatusRefused(ValueError):
    """A change the claim's status does not allow; the message is the sentence the API answers 409 with."""


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The claim's new status, the history entry that records it, and whether the member hears of it."""

    status: str
    entry: dict[str, Any]  # {"at", "status", "by", optional "note", "insurer_claim_number"}
    insurer_claim_number: str | None = None
    tell_member: bool = True


def history_entry(status: str, *, by: str, now: datetime, note: str | None = None,
                  insurer_claim_number: str | None = None) -> dict[str, Any]:
    """One line of a claim's `status_history`."""
    entry: dict[str, Any] = {"at": utc_text(now), "status": status, "by": by}
    if note:
        entry["note"] = note
    if insurer_claim_number:
        entry["insurer_claim_number"] = insurer_claim_number
    return entry


def confirm(current: str, *, by: str, now: datetime) -> StatusChange:
    """The member (or someone on their behalf, or their standing consent) says: send it."""
    _known(current)
    if current != "prefilled":
        raise StatusRefused(f"The claim was confirmed already (it is {_words(current)} now)")
    return StatusChange("confirmed", history_entry("confirmed", by=by, now=now), tell_member=False)


def delivered(current: str, *, now: datetime) -> StatusChange | None:
    """The insurer's endpoint took the claim (2xx): `submitted`, unless it has answered already."""
    _known(current)
    if current in ("confirmed", "failed"):
        return StatusChange("submitted", history_entry("submitted", by="vigil", now=now))
    if current == "submitted" or current in _ANSWERED:
        return None
    raise StatusRefused("The claim was never confirmed, so it cannot have been delivered")


def gave_up(current: str, *, now: datetime, reason: str) -> StatusChange | None:
    """Delivery stopped trying: a `confirmed` claim is `failed`; a claim already past it stays as it is."""
    _known(current)
    if current != "confirmed":
        return None
    return StatusChange("failed", history_entry("failed", by="vigil", now=now, note=reason))


def send_again(current: str, *, by: str, now: datetime) -> StatusChange:
    """Someone asks for a claim whose delivery gave up to be delivered once more."""
    _known(current)
    if current != "failed":
        raise StatusRefused(f"Only a claim whose delivery failed can be sent again (it is {_words(current)} now)")
    return StatusChange("confirmed", history_entry("confirmed", by=by, now=now, note="sent again"),
                        tell_member=False)


def insurer_answer(current: str, *, status: str, insurer_claim_number: str | None, note: str | None,
                   now: datetime, known_number: str | None, last_note: str | None = None) -> StatusChange | None:
    """The insurer's answer `status` to a claim in `current`; None when it says nothing new.

    `known_number` is the insurer's claim number on record and `last_note` the note of the last history
    entry: an answer repeating both with the same status is the same answer again.
    """
    _known(current)
    if status not in INSURER_STATUSES:
        raise ValueError(f"status {status!r} is not one of {', '.join(INSURER_STATUSES)}")
    number = _text(insurer_claim_number)
    note = _text(note)
    if current == "prefilled":
        raise StatusRefused("The claim was never sent to the insurer, so it cannot have an answer yet")
    new_number = number is not None and number != known_number
    if status == current and not new_number and (note is None or note == last_note):
        return None
    if current == "paid" or (status != current and status not in _INSURER_MOVES[current]):
        raise StatusRefused(_refusal(current, status))
    return StatusChange(status, history_entry(status, by="insurer", now=now, note=note, insurer_claim_number=number),
                        insurer_claim_number=number or known_number)


def _refusal(current: str, status: str) -> str:
    if current == "paid" and status == "paid":
        return "The claim is paid, which is final: its claim number and note cannot change any more"
    if current == "paid":
        return f"The claim is paid, which is final, so it cannot become {_words(status)}"
    if current == "rejected" and status == "paid":
        return "The claim is rejected; it must be accepted again (on appeal) before it can be paid"
    return f"A claim that is {_words(current)} cannot become {_words(status)}"


def _known(current: str) -> None:
    if current not in STATUSES:
        raise ValueError(f"status {current!r} is not a claim status ({', '.join(STATUSES)})")


def _text(value: str | None) -> str | None:
    """A blank value says nothing."""
    return (value.strip() or None) if isinstance(value, str) else None


def _words(status: str) -> str:
    return {"needs_info": "waiting for more information", "prefilled": "pre-filled"}.get(status, status)
