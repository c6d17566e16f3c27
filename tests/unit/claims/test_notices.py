"""What the member reads about their claim: the loss named as people name it, their time zone, the one next step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from vigil.alerting.tips import Tip
from vigil.claims.notices import ClaimView, call_reason, confirm_reminder, confirm_request, status_notice, tip_notice

# 13:02 UTC on Sunday 22 November 2026: 14:02 in Paris, 08:02 in New York; 23:30 UTC is already Monday in Paris.
LOSS = datetime(2026, 11, 22, 13, 2, tzinfo=UTC)
LINK = "https://vigil.example/c/tok-123"
LEAK = ClaimView(id="c-1", type="water_damage", loss_at=LOSS, room="kitchen", policy_number="HOME-7",
                 insurer_claim_number=None, alert_type="water_leak")
FIRE = replace(LEAK, type="fire", room=None, alert_type="smoke")
FALL = replace(LEAK, type="accident", room="left wrist", policy_number="HEALTH-3", alert_type="fall")
LATE_FALL = replace(FALL, loss_at=datetime(2026, 11, 22, 23, 30, tzinfo=UTC))
CRASH = replace(FALL, alert_type=None)


@pytest.mark.parametrize(("claim", "tz", "named", "when"), [
    (LEAK, "Europe/Paris", "the water damage in your kitchen", "on Sunday 22 November at 14:02 (Europe/Paris)"),
    (LEAK, "America/New_York", "the water damage in your kitchen",
     "on Sunday 22 November at 08:02 (America/New_York)"),
    (replace(LEAK, room="the bathroom"), "Europe/Paris", "the water damage in your bathroom", "at 14:02"),
    (replace(LEAK, room="under the stairs"), "Europe/Paris", "the water damage under the stairs", "at 14:02"),
    (FIRE, "Europe/Paris", "the fire at your home", "on Sunday 22 November at 14:02 (Europe/Paris)"),
    # An accident names no room: a wearable's location is where it is worn.
    (FALL, "Europe/Paris", "your fall on Sunday 22 November at 14:02 (Europe/Paris)", "14:02"),
    (LATE_FALL, "Europe/Paris", "your fall on Monday 23 November at 00:30 (Europe/Paris)", "00:30"),
    (CRASH, "Europe/Paris", "your accident on Sunday", "14:02"),
    # A zone that is not one: UTC, said so.
    (LEAK, "Nowhere/Else", "the water damage in your kitchen", "on Sunday 22 November at 13:02 (UTC)"),
])
def test_the_confirmation_request_names_the_loss_in_the_members_time_and_carries_the_link(claim, tz, named, when):
    message = confirm_request(claim, first_name="Anna", timezone=tz, link=LINK)
    assert message.body.startswith("Hello Anna,")
    assert named in message.body
    assert when in message.body
    assert LINK in message.body
    assert '"Send my claim"' in message.body
    assert claim.policy_number in message.body
    assert "wrist" not in message.body


@pytest.mark.parametrize(("tz", "when"), [
    ("Europe/Paris", "on Sunday 22 November at 14:02 (Europe/Paris)"),
    ("Asia/Tokyo", "on Sunday 22 November at 22:02 (Asia/Tokyo)"),
])
def test_the_reminder_carries_the_link_and_says_it_is_the_only_one(tz, when):
    message = confirm_reminder(LEAK, first_name="Anna", timezone=tz, link=LINK)
    assert message.title == "Vigil: your claim is waiting for you"
    assert f"the water damage in your kitchen {when}" in message.body
    assert LINK in message.body
    assert "only reminder" in message.body
    assert "not been sent yet" in message.body


@pytest.mark.parametrize(("claim", "status", "note", "title", "says"), [
    (LEAK, "submitted", None, "Vigil: your claim has been sent",
     ["Your claim for the water damage in your kitchen has reached your insurer (policy HOME-7).",
      "You do not need to do anything now"]),
    (replace(LEAK, insurer_claim_number="INS-42"), "accepted", None, "Vigil: your claim is accepted; number INS-42",
     ["your insurer has accepted your claim for the water damage in your kitchen.", "Their claim number is INS-42",
      "You do not need to do anything now"]),
    (LEAK, "accepted", None, "Vigil: your claim is accepted",
     ["They will give you their claim number."]),
    (LEAK, "needs_info", None, "Vigil: your insurer needs a little more information",
     ["needs more information for your claim for the water damage in your kitchen.", "They will contact you",
      "call your care manager"]),
    (replace(LEAK, insurer_claim_number="INS-42"), "needs_info", "  Photos of the damaged cupboards.  ",
     "Vigil: your insurer needs a little more information",
     ["(their number INS-42)", "What they asked for: Photos of the damaged cupboards.", "Your care manager can help"]),
    (FIRE, "rejected", "The policy excludes outbuildings.", "Vigil: news about your claim",
     ["has not accepted your claim for the fire at your home.", "Their reason: The policy excludes outbuildings.",
      "Please call your care manager"]),
    (FALL, "rejected", None, "Vigil: news about your claim",
     ["your claim for your fall on 22 November.", "Please call your care manager"]),
    (replace(FALL, insurer_claim_number="H-9"), "paid", None, "Vigil: your claim is paid",
     ["paid your claim for your fall on 22 November (their number H-9): the money is on its way to you.",
      "Your care manager will check in with you"]),
    (LEAK, "failed", None, "Vigil: we could not send your claim yet",
     ["could not reach your insurer to send your claim for the water damage in your kitchen",
      "your care manager will call you"]),
])
def test_each_status(claim, status, note, title, says):
    message = status_notice(claim, status=status, note=note, first_name="Anna", timezone="Europe/Paris")
    assert message.title == title
    lines = message.body.split("\n\n")
    assert lines[0] == "Hello Anna,"
    assert lines[-1] == "— Vigil, for your insurer"
    for words in says:
        assert words in message.body


def test_the_day_of_an_accident_is_the_members_day():
    assert "your fall on 23 November" in status_notice(LATE_FALL, status="paid", note=None, first_name="Anna",
                                                       timezone="Europe/Paris").body
    assert "your fall on 22 November" in status_notice(LATE_FALL, status="paid", note=None, first_name="Anna",
                                                       timezone="America/New_York").body


def test_a_status_without_a_notice_is_an_error():
    with pytest.raises(ValueError, match="no notice"):
        status_notice(LEAK, status="prefilled", note=None, first_name="Anna", timezone="Europe/Paris")


def test_the_tip_follows_the_payment():
    tip = Tip(title="Know where your water shut-off valve is", text="Find it now and label it.")
    message = tip_notice(LEAK, tip=tip, first_name="Anna")
    assert message.title == "Vigil: Know where your water shut-off valve is"
    assert "Now that your claim for the water damage in your kitchen is paid" in message.body
    assert "Know where your water shut-off valve is: Find it now and label it." in message.body


@pytest.mark.parametrize(("claim", "status", "note", "says"), [
    (LEAK, "prefilled", None, ["Call Anna Meyer: their claim for the water damage in their kitchen (policy HOME-7)",
                               "confirm it on their behalf"]),
    (LEAK, "submitted", None, ["has been sent to the insurer"]),
    (replace(LEAK, insurer_claim_number="INS-42"), "accepted", None, ["is accepted", "claim number, INS-42"]),
    (LEAK, "needs_info", "Photos please.", ["needs more information", "The insurer wrote: Photos please."]),
    (FALL, "rejected", None, ["their fall on 22 November", "whether to appeal"]),
    (FIRE, "paid", None, ["the fire at their home", "the money is on its way"]),
    (LEAK, "failed", None, ["could not be delivered", "send it another way"]),
])
def test_the_care_managers_call_note(claim, status, note, says):
    reason = call_reason(claim, status=status, member_name="Anna Meyer", note=note)
    for words in says:
        assert words in reason


def test_a_call_note_for_an_unknown_status_is_an_error():
    with pytest.raises(ValueError, match="no call"):
        call_reason(LEAK, status="lost", member_name="Anna Meyer")
