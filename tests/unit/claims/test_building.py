"""Claim building per incident kind and policy line: the document of CONTRACT §3, as the bridge builds it."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tests.unit.claims.given import PARIS, Story, at, fall, fire, leak, member
from vigil.claims.building import SCHEMA, build_claim, claim_id, emergency_help, property_damaged, submission_body
from vigil.claims.coverage import coverage_refusal
from vigil.claims.evidence import consistency, digest, encode, evidence_package, evidence_window

BUILT_AT = at(35)
PUBLIC_URL = "https://vigil.example.org/"
CM = "care_manager:cm-1"
KEYS = {"id", "incident_id", "member_id", "alert_id", "device_id", "type", "line", "policy_number", "loss_at",
        "detected_at", "ended_at", "duration_s", "reported_at", "location", "insured", "description",
        "property_damaged", "injuries", "emergency_help_dispatched", "acknowledged", "unknowns", "green_channel",
        "green_channel_reason", "evidence", "reported_by"}

LEAK, FIRE, FALL = leak(25), fire(with_heat=True), fall()


def bridge(story: Story, **member_changes: Any) -> str | tuple[dict[str, Any], bytes]:
    """What the claims bridge does with an incident: the refusal, or the claim document and its evidence bytes."""
    insured = member(**member_changes)
    incident = story.incident
    refusal = coverage_refusal(incident.kind, incident.covered_by, policy_line=insured.policy_line,
                               policy_number=insured.policy_number)
    if refusal is not None:
        return refusal
    checks = consistency(incident, story.device, story.readings)
    window = evidence_window(incident, story.alert, BUILT_AT)
    package = evidence_package(claim_id=claim_id(incident.id), incident=incident, device=story.device,
                               readings=story.readings, alerts=[story.alert], outreach=[], checks=checks,
                               window=window, built_at=BUILT_AT)
    data = encode(package)
    document = build_claim(incident=incident, member=insured, device=story.device, alert=story.alert, checks=checks,
                           evidence_digest=digest(data), public_url=PUBLIC_URL, built_at=BUILT_AT,
                           readings=story.readings)
    return document, data


@pytest.mark.parametrize(("story", "line", "refusal"), [
    (LEAK, "health", "no claim: water damage is covered by a home policy, and policy P-2026-0042 is health only"),
    (FIRE, "health", "no claim: a fire is covered by a home policy, and policy P-2026-0042 is health only"),
    (FALL, "home", "no claim: an accident is covered by a health policy, and policy P-2026-0042 is home only"),
])
def test_no_claim_when_the_policy_line_does_not_cover_the_incident(story, line, refusal):
    assert bridge(story, policy_line=line) == refusal


WATER_DAMAGE = ["floor coverings in the kitchen", "skirting and lower walls in the kitchen",
                "furniture and appliances standing in the kitchen"]
FIRE_DAMAGE = ["the kitchen and its contents", "smoke damage in adjacent rooms"]


@pytest.mark.parametrize(("story", "line", "expected"), [
    pytest.param(LEAK, "home", {
        "type": "water_damage", "line": "home", "loss_at": "2026-11-22T02:00:00Z",
        "detected_at": "2026-11-22T02:20:05Z", "ended_at": "2026-11-22T02:25:00Z", "duration_s": 1500.0,
        "location": {"address": "12 rue des Lilas, 75011 Paris", "room": "kitchen"},
        "property_damaged": WATER_DAMAGE, "injuries": "not applicable", "emergency_help_dispatched": "unknown",
        "acknowledged": None, "unknowns": ["emergency_help_dispatched"], "green_channel": False,
        "green_channel_reason": None,
    }, id="leak, home policy, cleared unanswered"),
    pytest.param(LEAK.acknowledged(CM, at(4)).resolved(CM, "assisted", at(30)), "both", {
        "type": "water_damage", "line": "home", "ended_at": "2026-11-22T02:25:00Z",
        "emergency_help_dispatched": False, "acknowledged": {"by": CM, "at": "2026-11-22T02:04:00Z"},
        "unknowns": [], "green_channel": False,
    }, id="leak, both lines, acknowledged and resolved"),
    pytest.param(LEAK.still_open(), "home", {
        "ended_at": None, "duration_s": None, "emergency_help_dispatched": "unknown",
        "unknowns": ["emergency_help_dispatched"],
    }, id="leak still running when built"),
    pytest.param(FIRE, "home", {
        "type": "fire", "line": "home", "ended_at": "2026-11-22T02:08:00Z", "duration_s": 480.0,
        "property_damaged": FIRE_DAMAGE, "injuries": "unknown", "fire_service_attended": "unknown",
        "emergency_help_dispatched": "unknown",
        "unknowns": ["injuries", "fire_service_attended", "emergency_help_dispatched"],
        "green_channel": True, "green_channel_reason": "A fire in the home.",
    }, id="fire, home policy"),
    pytest.param(FIRE.acknowledged(CM, at(1)).resolved(CM, "emergency_dispatched", at(3)), "both", {
        "type": "fire", "emergency_help_dispatched": True, "acknowledged": {"by": CM, "at": "2026-11-22T02:01:00Z"},
        "unknowns": ["injuries", "fire_service_attended"], "green_channel": True,
    }, id="fire, both lines, help sent"),
    pytest.param(FIRE.still_open(), "home", {
        "type": "fire", "ended_at": None, "duration_s": None,
        "unknowns": ["injuries", "fire_service_attended", "emergency_help_dispatched"],
    }, id="fire still burning when built"),
    pytest.param(FALL, "health", {
        "type": "accident", "line": "health", "loss_at": "2026-11-22T02:01:00Z", "detected_at": "2026-11-22T02:02:05Z",
        "ended_at": None, "duration_s": None,
        "location": {"address": "12 rue des Lilas, 75011 Paris", "room": None},
        "property_damaged": [], "injuries": "unknown", "emergency_help_dispatched": "unknown",
        "acknowledged": None, "unknowns": ["injuries", "emergency_help_dispatched"], "green_channel": False,
        "green_channel_reason": None,
    }, id="fall, health policy, member aged 68"),
    pytest.param(FALL.resolved("member", "member_ok", at(3)), "both", {
        "type": "accident", "line": "health", "emergency_help_dispatched": False, "acknowledged": None,
        "unknowns": ["injuries"], "green_channel": False,
    }, id="fall, both lines, the member was OK"),
    pytest.param(FALL.acknowledged("admin:env", at(2)).resolved(CM, "emergency_dispatched", at(6)), "health", {
        "emergency_help_dispatched": True, "acknowledged": {"by": "admin:env", "at": "2026-11-22T02:02:00Z"},
        "unknowns": ["injuries"], "green_channel": True,
        "green_channel_reason": "An accident, and emergency help was sent.",
    }, id="fall, help sent"),
    pytest.param(FALL.acknowledged(CM, at(2)), "health", {
        "emergency_help_dispatched": "unknown", "unknowns": ["injuries", "emergency_help_dispatched"],
    }, id="fall, acknowledged but not resolved"),
])
def test_the_claim_document(story, line, expected):
    document, data = bridge(story, policy_line=line)

    expected_keys = KEYS | ({"fire_service_attended"} if story.incident.kind == "fire" else set())
    assert set(document) == expected_keys
    assert {name: document[name] for name in expected} == expected
    assert document["id"] == claim_id(story.incident.id)
    assert (document["incident_id"], document["alert_id"], document["device_id"], document["member_id"]) == (
        story.incident.id, story.alert.id, story.device.device_id, "mem-42")
    assert document["policy_number"] == "P-2026-0042"
    assert document["reported_at"] == "2026-11-22T02:35:00Z"
    assert document["insured"] == {"name": "Anna Meyer", "address": "12 rue des Lilas, 75011 Paris",
                                   "phone": "+33 6 12 34 56 78", "email": "anna.meyer@example.org",
                                   "birth_date": "1958-04-09"}
    assert document["evidence"] == {
        "url": f"https://vigil.example.org/api/v1/claims/{document['id']}/evidence",
        "digest": digest(data), "checks": json.loads(data)["checks"]}
    assert document["evidence"]["checks"]["readings_continuous"] is True
    assert document["reported_by"] == "vigil"
    assert document["description"].startswith(("Water detected by the kitchen leak sensor from 03:00",
                                                "Smoke detected by the kitchen smoke alarm from 03:00",
                                                "A fall detected by the member's wearable at 03:01"))
    assert json.loads(encode(document)) == document


@pytest.mark.parametrize(("birth_date", "green", "reason"), [
    (date(1951, 11, 22), True, "A fall of a member aged 75."),  # 75 on the day of the fall
    (date(1951, 11, 23), False, None),  # 75 the next day
    (date(1931, 1, 1), True, "A fall of a member aged 95."),
    (None, False, None),
])
def test_a_fall_of_a_member_aged_75_or_more_takes_the_green_channel(birth_date, green, reason):
    document, _ = bridge(FALL, policy_line="health", birth_date=birth_date)

    assert (document["green_channel"], document["green_channel_reason"]) == (green, reason)
    assert document["insured"]["birth_date"] == (birth_date.isoformat() if birth_date else None)


def test_age_is_judged_on_the_day_of_the_loss_where_the_member_lives():
    # The fall is at 02:01 UTC on 22 November, still 21 November in New York: not yet 75 there.
    born = date(1951, 11, 22)

    paris, _ = bridge(FALL, policy_line="health", birth_date=born, timezone=PARIS)
    new_york, _ = bridge(FALL, policy_line="health", birth_date=born, timezone="America/New_York")

    assert (paris["green_channel"], new_york["green_channel"]) == (True, False)


def test_a_member_without_contacts_on_file_keeps_nulls_not_guesses():
    document, _ = bridge(LEAK, policy_line="home", phone=None, email=None, address=None)

    assert document["insured"] == {"name": "Anna Meyer", "address": None, "phone": None, "email": None,
                                   "birth_date": "1958-04-09"}
    assert document["location"] == {"address": None, "room": "kitchen"}


def test_the_same_incident_always_builds_the_same_claim():
    first, first_data = bridge(LEAK, policy_line="home")
    again, again_data = bridge(LEAK, policy_line="home")

    assert first == again and first_data == again_data
    assert uuid.UUID(first["id"]).version == 5
    assert claim_id(LEAK.incident.id) != claim_id(FIRE.incident.id)


@pytest.mark.parametrize(("status", "outcome", "expected"), [
    ("resolved", "emergency_dispatched", True),
    ("resolved", "member_ok", False),
    ("resolved", "false_alarm", False),
    ("resolved", "assisted", False),
    ("resolved", "no_action_needed", False),
    ("resolved", None, None),  # closed by its condition clearing: nobody said
    ("acknowledged", None, None),
    ("open", None, None),
])
def test_emergency_help_from_the_alert_outcome(status, outcome, expected):
    assert emergency_help(replace(FALL.alert, status=status, outcome=outcome)) is expected


def test_emergency_help_without_an_alert():
    assert emergency_help(None) is None


@pytest.mark.parametrize(("kind", "room", "damaged"), [
    ("water_damage", "kitchen", WATER_DAMAGE),
    ("water_damage", "the bathroom", ["floor coverings in the bathroom", "skirting and lower walls in the bathroom",
                                      "furniture and appliances standing in the bathroom"]),
    ("water_damage", "under the sink", ["floor coverings under the sink", "skirting and lower walls under the sink",
                                        "furniture and appliances standing under the sink"]),
    ("water_damage", None, ["floor coverings where the water was found",
                            "skirting and lower walls where the water was found",
                            "furniture and appliances standing where the water was found"]),
    ("fire", "kitchen", FIRE_DAMAGE),
    ("fire", "under the stairs", ["the area under the stairs and its contents", "smoke damage in adjacent rooms"]),
    ("fire", None, ["the room where the fire started and its contents", "smoke damage in adjacent rooms"]),
    ("accident", None, []),
])
def test_property_damaged(kind, room, damaged):
    assert property_damaged(kind, room) == damaged


def test_a_claim_without_its_alert_row_is_still_built():
    checks = consistency(LEAK.incident, LEAK.device, LEAK.readings)
    document = build_claim(incident=LEAK.incident, member=member(), device=LEAK.device, alert=None, checks=checks,
                           evidence_digest="sha256:00", public_url="https://vigil.example.org", built_at=BUILT_AT)

    assert (document["ended_at"], document["acknowledged"], document["emergency_help_dispatched"]) == (
        None, None, "unknown")
    assert document["evidence"]["url"].startswith("https://vigil.example.org/api/v1/claims/")


def test_the_submission_body_is_the_document_confirmed_in_canonical_json():
    document, _ = bridge(LEAK, policy_line="home")
    confirmed_at = datetime(2026, 11, 22, 9, 15, 30, 250000, tzinfo=UTC)

    body = submission_body(document, confirmed_by="member", confirmed_at=confirmed_at)

    sent = json.loads(body)
    assert sent == {**document, "confirmation": {"by": "member", "at": "2026-11-22T09:15:30.250000Z"},
                    "schema": SCHEMA}
    assert SCHEMA == "vigil.claim/v1"
    # The same bytes from the document as PostgreSQL's jsonb gives it back: keys in another order.
    reordered = dict(reversed(list(json.loads(json.dumps(document)).items())))
    assert submission_body(reordered, confirmed_by="member", confirmed_at=confirmed_at) == body
    assert body == json.dumps(sent, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
