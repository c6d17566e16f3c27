"""The description a claims handler reads first: plain words, the member's local time and zone, how long,
who acknowledged the alert and what was done."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.claims.given import PARIS, at, fall, fire, home_device, leak
from vigil.claims.description import actor_words, describe

LEAK, FIRE, FIRE_ALONE, FALL = leak(25), fire(with_heat=True), fire(with_heat=False), fall()
CM = "care_manager:cm-1"
DAY = "(Europe/Paris) on Sunday 22 November 2026"


@pytest.mark.parametrize(("story", "timezone", "expected"), [
    pytest.param(
        LEAK.acknowledged(CM, at(4)), PARIS,
        f"Water detected by the kitchen leak sensor from 03:00 to 03:25 {DAY}, 25 minutes; "
        "the alert was acknowledged by the care manager at 03:04.",
        id="leak, acknowledged"),
    pytest.param(
        LEAK, PARIS,
        f"Water detected by the kitchen leak sensor from 03:00 to 03:25 {DAY}, 25 minutes; "
        "nobody acknowledged the alert.",
        id="leak that cleared unanswered"),
    pytest.param(
        LEAK.acknowledged("admin:env", at(4)).resolved(CM, "no_action_needed", at(40)), PARIS,
        f"Water detected by the kitchen leak sensor from 03:00 to 03:25 {DAY}, 25 minutes; "
        "the alert was acknowledged by Vigil's operator at 03:04; the care manager recorded at 03:40 that no "
        "action was needed.",
        id="leak, acknowledged by the operator, resolved by the care manager"),
    pytest.param(
        LEAK.resolved("member", "member_ok", at(3)), PARIS,
        f"Water detected by the kitchen leak sensor from 03:00 to 03:25 {DAY}, 25 minutes; "
        "the member said they were OK at 03:03.",
        id="leak, the member's I'm OK"),
    pytest.param(
        LEAK.still_open().acknowledged(CM, at(4)), PARIS,
        f"Water detected by the kitchen leak sensor from 03:00 {DAY}, last detected at 03:20, 20 minutes after it "
        "began, and not cleared when this claim was prepared at 03:35; the alert was acknowledged by the care "
        "manager at 03:04.",
        id="leak not over when the claim was prepared"),
    pytest.param(
        replace(leak(90), readings=[]), "America/Sao_Paulo",
        "Water detected by the kitchen leak sensor from 23:00 (America/Sao_Paulo) on Saturday 21 November 2026 "
        "to 00:30 on Sunday 22 November 2026, 1 hour 30 minutes; nobody acknowledged the alert.",
        id="leak across midnight, end taken from the clear"),
    pytest.param(
        LEAK.acknowledged(CM, at(4)), "America/New_York",
        "Water detected by the kitchen leak sensor from 21:00 to 21:25 (America/New_York) on Saturday 21 November "
        "2026, 25 minutes; the alert was acknowledged by the care manager at 21:04.",
        id="leak in New York"),
    pytest.param(
        LEAK, "Mars/Olympus_Mons",
        "Water detected by the kitchen leak sensor from 02:00 to 02:25 (UTC) on Sunday 22 November 2026, "
        "25 minutes; nobody acknowledged the alert.",
        id="an unknown zone speaks UTC"),
    pytest.param(
        leak(device=home_device(location=None)), PARIS,
        f"Water detected by the leak sensor from 03:00 to 03:25 {DAY}, 25 minutes; nobody acknowledged the alert.",
        id="leak, no room on file"),
    pytest.param(
        leak(device=home_device(location="under the sink")), PARIS,
        f"Water detected by the leak sensor under the sink from 03:00 to 03:25 {DAY}, 25 minutes; nobody "
        "acknowledged the alert.",
        id="leak, a place rather than a room"),
    pytest.param(
        FIRE.acknowledged(CM, at(1)).resolved("admin:tok_9", "emergency_dispatched", at(2)), PARIS,
        f"Smoke detected by the kitchen smoke alarm from 03:00 to 03:08 {DAY}, 8 minutes; the same device also "
        "measured overheating (up to 63 °C). The alert was acknowledged by the care manager at 03:01; Vigil's "
        "operator recorded at 03:02 that emergency help was sent.",
        id="fire with overheating, help sent"),
    pytest.param(
        FIRE_ALONE.resolved(CM, "false_alarm", at(30)), PARIS,
        f"Smoke detected by the kitchen smoke alarm from 03:00 to 03:08 {DAY}, 8 minutes; the care manager "
        "recorded at 03:30 that it was a false alarm.",
        id="smoke alone"),
    pytest.param(
        FALL, PARIS,
        f"A fall detected by the member's wearable at 03:01 {DAY}, with no steps in the 60 seconds after it (the "
        "member did not get up); no steps were counted after it up to 03:20. Nobody acknowledged the alert.",
        id="fall, never got up"),
    pytest.param(
        fall(steps_again_s=600).acknowledged(CM, at(2)).resolved(CM, "emergency_dispatched", at(5)), PARIS,
        f"A fall detected by the member's wearable at 03:01 {DAY}, with no steps in the 60 seconds after it (the "
        "member did not get up); steps were next counted at 03:10. The alert was acknowledged by the care manager "
        "at 03:02; the care manager recorded at 03:05 that emergency help was sent.",
        id="fall, help sent, up again later"),
    pytest.param(
        replace(FALL, readings=[]).resolved("member", "member_ok", at(3)), PARIS,
        f"A fall detected by the member's wearable at 03:01 {DAY}, with no steps in the 60 seconds after it (the "
        "member did not get up); the member said they were OK at 03:03.",
        id="fall, the member's I'm OK, no readings"),
    pytest.param(
        FALL.resolved(CM, "assisted", at(26 * 60)), PARIS,
        f"A fall detected by the member's wearable at 03:01 {DAY}, with no steps in the 60 seconds after it (the "
        "member did not get up); no steps were counted after it up to 03:20. The care manager recorded at 05:00 "
        "on Monday 23 November 2026 that the member was helped.",
        id="fall, resolved the next day"),
])
def test_describe(story, timezone, expected):
    text = describe(incident=story.incident, device=story.device, alert=story.alert, timezone=timezone,
                    built_at=at(35), readings=story.readings)

    assert text == expected
    assert story.device.device_id not in text


def test_a_wearable_location_is_not_a_room():
    text = describe(incident=FALL.incident, device=FALL.device, alert=FALL.alert, timezone=PARIS, built_at=at(35))

    assert FALL.incident.location == "left wrist"
    assert "wrist" not in text


def test_without_an_alert_row_it_says_what_was_seen_and_no_more():
    text = describe(incident=LEAK.incident, device=LEAK.device, alert=None, timezone=PARIS, built_at=at(35))

    assert text == f"Water detected by the kitchen leak sensor from 03:00 {DAY}, not cleared when this claim was " \
                   "prepared at 03:35, 35 minutes after it began."


@pytest.mark.parametrize(("actor", "words"), [
    ("care_manager:cm-1", "the care manager"),
    ("admin:env", "Vigil's operator"),
    ("admin:tok_4f2", "Vigil's operator"),
    ("admin", "Vigil's operator"),
    ("member", "the member"),
    ("vigil", "Vigil"),
    ("insurer:x", "someone"),
    (None, "someone"),
])
def test_actor_words(actor, words):
    assert actor_words(actor) == words
