"""Every claim status against confirmation, delivery, giving up and each insurer answer: allowed, a no-op or refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil.claims.lifecycle import (
    INSURER_STATUSES,
    STATUSES,
    StatusChange,
    StatusRefused,
    confirm,
    delivered,
    gave_up,
    insurer_answer,
    send_again,
)

NOW = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
AT = "2026-11-22T14:30:00Z"
REFUSED = "refused"
NOOP = None

# status -> action -> the new status, NOOP (None) or REFUSED
TABLE: dict[str, dict[str, str | None]] = {
    "prefilled": {"confirm": "confirmed", "delivered": REFUSED, "gave_up": NOOP, "send_again": REFUSED,
                  "accepted": REFUSED, "needs_info": REFUSED, "rejected": REFUSED, "paid": REFUSED},
    "confirmed": {"confirm": REFUSED, "delivered": "submitted", "gave_up": "failed", "send_again": REFUSED,
                  "accepted": "accepted", "needs_info": "needs_info", "rejected": "rejected", "paid": "paid"},
    "submitted": {"confirm": REFUSED, "delivered": NOOP, "gave_up": NOOP, "send_again": REFUSED,
                  "accepted": "accepted", "needs_info": "needs_info", "rejected": "rejected", "paid": "paid"},
    "accepted": {"confirm": REFUSED, "delivered": NOOP, "gave_up": NOOP, "send_again": REFUSED,
                 "accepted": NOOP, "needs_info": "needs_info", "rejected": "rejected", "paid": "paid"},
    "needs_info": {"confirm": REFUSED, "delivered": NOOP, "gave_up": NOOP, "send_again": REFUSED,
                   "accepted": "accepted", "needs_info": NOOP, "rejected": "rejected", "paid": "paid"},
    "rejected": {"confirm": REFUSED, "delivered": NOOP, "gave_up": NOOP, "send_again": REFUSED,
                 "accepted": "accepted", "needs_info": "needs_info", "rejected": NOOP, "paid": REFUSED},
    "paid": {"confirm": REFUSED, "delivered": NOOP, "gave_up": NOOP, "send_again": REFUSED,
             "accepted": REFUSED, "needs_info": REFUSED, "rejected": REFUSED, "paid": NOOP},
    # The insurer got a delivery whose answer was lost: its answer still counts.
    "failed": {"confirm": REFUSED, "delivered": "submitted", "gave_up": NOOP, "send_again": "confirmed",
               "accepted": "accepted", "needs_info": "needs_info", "rejected": "rejected", "paid": "paid"},
}
CASES = [(current, action, expected) for current, row in TABLE.items() for action, expected in row.items()]


def _act(current: str, action: str) -> StatusChange | None:
    if action == "confirm":
        return confirm(current, by="member", now=NOW)
    if action == "delivered":
        return delivered(current, now=NOW)
    if action == "gave_up":
        return gave_up(current, now=NOW, reason="no 2xx answer in 3 days")
    if action == "send_again":
        return send_again(current, by="admin:env", now=NOW)
    # A plain answer: no number, no note, none known.
    return insurer_answer(current, status=action, insurer_claim_number=None, note=None, now=NOW, known_number=None)


def test_the_table_covers_every_status_and_action():
    assert set(TABLE) == set(STATUSES)
    actions = {"confirm", "delivered", "gave_up", "send_again", *INSURER_STATUSES}
    assert all(set(row) == actions for row in TABLE.values())


@pytest.mark.parametrize(("current", "action", "expected"), CASES)
def test_every_transition(current, action, expected):
    if expected == REFUSED:
        with pytest.raises(StatusRefused):
            _act(current, action)
        return
    change = _act(current, action)
    if expected is NOOP:
        assert change is None
        return
    assert change.status == expected
    assert change.entry["status"] == expected
    assert change.entry["at"] == AT


@pytest.mark.parametrize(("action", "by", "tells"), [
    ("confirm", "member", False),
    ("delivered", "vigil", True),
    ("gave_up", "vigil", True),
    ("accepted", "insurer", True),
    ("paid", "insurer", True),
])
def test_who_is_recorded_and_whether_the_member_is_told(action, by, tells):
    change = _act("confirmed" if action != "confirm" else "prefilled", action)
    assert change.entry["by"] == by
    assert change.tell_member is tells


def test_confirm_records_who_confirmed():
    change = confirm("prefilled", by="consent:auto_claims", now=NOW)
    assert change == StatusChange("confirmed", {"at": AT, "status": "confirmed", "by": "consent:auto_claims"},
                                  tell_member=False)


def test_sending_again_records_who_and_tells_no_one_yet():
    change = send_again("failed", by="care_manager:cm-1", now=NOW)
    assert change == StatusChange("confirmed", {"at": AT, "status": "confirmed", "by": "care_manager:cm-1",
                                                "note": "sent again"}, tell_member=False)


def test_giving_up_records_why():
    change = gave_up("confirmed", now=NOW, reason="no 2xx answer in 3 days")
    assert change.entry == {"at": AT, "status": "failed", "by": "vigil", "note": "no 2xx answer in 3 days"}


@pytest.mark.parametrize(("current", "status", "number", "note", "known", "last_note", "expected"), [
    # Accepted with the insurer's number: recorded in the entry and on the claim.
    ("submitted", "accepted", "INS-42", None, None, None, ("accepted", "INS-42", "INS-42")),
    # A later answer without a number keeps the known one; the entry does not repeat it.
    ("accepted", "paid", None, "paid in full", "INS-42", None, ("paid", None, "INS-42")),
    ("accepted", "needs_info", "  ", None, "INS-42", None, ("needs_info", None, "INS-42")),
    # The same status with a corrected number, or a new note, is news.
    ("accepted", "accepted", "INS-43", None, "INS-42", None, ("accepted", "INS-43", "INS-43")),
    ("needs_info", "needs_info", None, "the plumber's invoice", "INS-42", "photos of the kitchen",
     ("needs_info", None, "INS-42")),
    # The same answer again, with or without the number, or the same note: nothing new.
    ("accepted", "accepted", "INS-42", None, "INS-42", None, None),
    ("accepted", "accepted", None, None, "INS-42", None, None),
    ("needs_info", "needs_info", None, "photos of the kitchen", None, "photos of the kitchen", None),
    ("paid", "paid", "INS-42", None, "INS-42", None, None),
    # An appeal: a rejected claim is accepted after all.
    ("rejected", "accepted", "INS-42", "on appeal", None, None, ("accepted", "INS-42", "INS-42")),
])
def test_the_insurers_claim_number_and_repeated_answers(current, status, number, note, known, last_note, expected):
    change = insurer_answer(current, status=status, insurer_claim_number=number, note=note, now=NOW,
                            known_number=known, last_note=last_note)
    if expected is None:
        assert change is None
        return
    new_status, in_entry, on_claim = expected
    assert change.status == new_status
    assert change.entry.get("insurer_claim_number") == in_entry
    assert change.insurer_claim_number == on_claim
    assert change.entry.get("note") == (note.strip() if note and note.strip() else None)
    assert change.tell_member is True


@pytest.mark.parametrize(("current", "status", "number", "words"), [
    ("prefilled", "accepted", None, "never sent"),
    ("paid", "rejected", None, "final"),
    ("paid", "paid", "INS-99", "final"),
    ("rejected", "paid", None, "accepted again"),
])
def test_refusals_say_why(current, status, number, words):
    with pytest.raises(StatusRefused, match=words):
        insurer_answer(current, status=status, insurer_claim_number=number, note=None, now=NOW, known_number="INS-42")


@pytest.mark.parametrize("bad", ["approved", "submitted", "prefilled", ""])
def test_an_answer_that_is_no_insurer_status_is_an_error_not_a_refusal(bad):
    with pytest.raises(ValueError, match="is not one of") as raised:
        insurer_answer("submitted", status=bad, insurer_claim_number=None, note=None, now=NOW, known_number=None)
    assert not isinstance(raised.value, StatusRefused)


def test_an_unknown_current_status_is_an_error():
    with pytest.raises(ValueError, match="not a claim status"):
        delivered("lost", now=NOW)
