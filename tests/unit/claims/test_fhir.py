"""The accident claim as a FHIR R4B Bundle: it parses back with the library's models and says what it should."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

from vigil.claims.fhir import ObservationLimit, accident_bundle
from vigil.timefmt import utc_text

# 23:30 UTC on 22 November: already the 23rd in Paris.
LOSS = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
CLAIM_ID = "6f1c2a9e-0b3d-5e7f-8a1b-2c3d4e5f6a7b"


def _document(**changes) -> dict:
    document = {
        "id": CLAIM_ID, "incident_id": "i-1", "member_id": "m-1", "alert_id": "a-1", "device_id": "w-17",
        "type": "accident", "line": "health", "policy_number": "HEALTH-3",
        "loss_at": utc_text(LOSS), "detected_at": utc_text(LOSS + timedelta(seconds=70)), "ended_at": None,
        "duration_s": None, "reported_at": utc_text(LOSS + timedelta(minutes=15)),
        "location": {"address": "12 rue des Lilas, 75011 Paris", "room": None},
        "insured": {"name": "Anna Meyer", "address": "12 rue des Lilas, 75011 Paris", "phone": "+33 6 12 34 56 78",
                    "email": "anna@example.org", "birth_date": "1946-04-02"},
        "description": "A fall detected by the wearable at 00:30 (Europe/Paris) on Monday 23 November 2026.",
        "property_damaged": [], "injuries": "unknown", "emergency_help_dispatched": "unknown", "acknowledged": None,
        "unknowns": ["injuries", "emergency_help_dispatched"], "green_channel": True,
        "green_channel_reason": "a fall of a member over 75",
        "evidence": {"url": f"https://vigil.example/api/v1/claims/{CLAIM_ID}/evidence", "digest": "sha256:" + "ab" * 32,
                     "checks": {}},
        "reported_by": "vigil",
    }
    return document | changes


def _readings(minutes_before: int, minutes_after: int, every_s: int = 10) -> list[dict]:
    readings, seq = [], 0
    t = LOSS - timedelta(minutes=minutes_before)
    while t <= LOSS + timedelta(minutes=minutes_after):
        for metric, value in (("heart_rate", 72 + seq % 5), ("spo2", 96.5), ("skin_temp", 33.2), ("worn", 1),
                              ("steps", 0)):
            readings.append({"ts": utc_text(t), "metric": metric, "value": value, "seq": seq})
        seq += 1
        t += timedelta(seconds=every_s)
    return readings


def _evidence(readings: list[dict]) -> dict:
    return {"claim_id": CLAIM_ID, "incident": {"alert_type": "fall"}, "readings": readings}


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_the_bundle_parses_back_with_the_r4b_models():
    bundle = accident_bundle(_document(), _evidence(_readings(2, 2)), timezone="Europe/Paris")
    text = json.dumps(bundle)
    assert "null" not in text
    parsed = Bundle.model_validate_json(text)
    assert parsed.type == "collection"
    kinds = [type(entry.resource) for entry in parsed.entry]
    assert kinds[0] is Patient and kinds[-1] is Claim
    assert set(kinds[1:-1]) == {Observation}
    assert Bundle.model_validate(bundle).model_dump(mode="json") == bundle


def test_the_patient_is_the_insured():
    [patient] = _resources(accident_bundle(_document(), _evidence([])), "Patient")
    assert patient["name"] == [{"text": "Anna Meyer"}]
    assert patient["birthDate"] == "1946-04-02"
    assert {"system": "phone", "value": "+33 6 12 34 56 78"} in patient["telecom"]
    assert {"system": "email", "value": "anna@example.org"} in patient["telecom"]
    assert patient["address"] == [{"text": "12 rue des Lilas, 75011 Paris"}]


def test_the_observations_carry_loinc_codes_and_ucum_units():
    bundle = accident_bundle(_document(), _evidence(_readings(0, 0)))
    observations = _resources(bundle, "Observation")
    # One instant: heart rate, SpO2, skin temperature; `worn` and `steps` are not vital signs.
    assert len(observations) == 3
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    assert set(by_code) == {"8867-4", "2708-6", "8310-5"}
    for code, ucum, value in (("8867-4", "/min", 72), ("2708-6", "%", 96.5), ("8310-5", "Cel", 33.2)):
        observation = by_code[code]
        assert observation["code"]["coding"][0]["system"] == "http://loinc.org"
        assert observation["valueQuantity"]["system"] == "http://unitsofmeasure.org"
        assert observation["valueQuantity"]["code"] == ucum
        assert observation["valueQuantity"]["value"] == value
        assert observation["category"][0]["coding"][0]["code"] == "vital-signs"
        assert observation["status"] == "final"
        assert observation["effectiveDateTime"] == "2026-11-22T23:30:00Z"
        assert observation["subject"]["reference"] == bundle["entry"][0]["fullUrl"]


def test_the_claim_validates_and_says_what_the_insurer_needs():
    bundle = accident_bundle(_document(), _evidence(_readings(1, 1)), timezone="Europe/Paris")
    [claim] = _resources(bundle, "Claim")
    Claim.model_validate(claim)
    assert claim["status"] == "active"
    assert claim["use"] == "claim"
    assert claim["type"]["coding"][0]["code"] == "professional"
    assert claim["patient"]["reference"] == bundle["entry"][0]["fullUrl"]
    assert claim["created"] == "2026-11-22T23:45:00Z"
    assert claim["provider"]["display"]
    assert claim["priority"]["coding"][0]["code"] == "stat"  # green channel
    assert claim["insurance"] == [{"sequence": 1, "focal": True, "coverage": {"display": "HEALTH-3"}}]
    # The member's day: 00:30 in Paris on the 23rd.
    assert claim["accident"] == {"date": "2026-11-23", "type": {"text": "fall"},
                                 "locationAddress": {"text": "12 rue des Lilas, 75011 Paris"}}
    observation_urls = {e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    referenced = {i["valueReference"]["reference"] for i in claim["supportingInfo"] if "valueReference" in i}
    assert referenced == observation_urls
    assert [i["sequence"] for i in claim["supportingInfo"]] == list(range(1, len(claim["supportingInfo"]) + 1))
    [evidence] = [i["valueAttachment"] for i in claim["supportingInfo"] if "valueAttachment" in i]
    assert evidence["url"].endswith(f"/claims/{CLAIM_ID}/evidence")
    assert "sha256:" in evidence["title"]


def test_priority_is_normal_off_the_green_channel():
    [claim] = _resources(accident_bundle(_document(green_channel=False), _evidence([])), "Claim")
    assert claim["priority"]["coding"][0]["code"] == "normal"


def test_observations_are_capped_to_those_nearest_the_loss():
    readings = _readings(40, 10, every_s=5)  # 601 instants x 3 vital signs
    bundle = accident_bundle(_document(), _evidence(readings))
    observations = _resources(bundle, "Observation")
    assert len(observations) == ObservationLimit
    times = [datetime.fromisoformat(o["effectiveDateTime"]) for o in observations]
    assert times == sorted(times)
    # 500 of 3 per instant: the 166-167 instants nearest the loss, about 7 minutes either side.
    assert LOSS in times
    assert max(abs((t - LOSS).total_seconds()) for t in times) <= 7 * 60
    [claim] = _resources(bundle, "Claim")
    assert sum("valueReference" in i for i in claim["supportingInfo"]) == ObservationLimit


def test_the_same_claim_gives_the_same_bundle():
    evidence = _evidence(_readings(1, 1))
    assert accident_bundle(_document(), evidence) == accident_bundle(_document(), evidence)


def test_missing_contacts_are_left_out_not_null():
    document = _document(insured={"name": "Anna Meyer", "address": None, "phone": None, "email": None,
                                  "birth_date": None}, location={"address": None, "room": None})
    bundle = accident_bundle(document, _evidence([]))
    assert "null" not in json.dumps(bundle)
    [patient] = _resources(bundle, "Patient")
    assert set(patient) == {"resourceType", "id", "name"}
    Bundle.model_validate(bundle)


@pytest.mark.parametrize("kind", ["water_damage", "fire"])
def test_only_accidents_have_a_bundle(kind):
    with pytest.raises(ValueError, match="accident claims only"):
        accident_bundle(_document(type=kind), _evidence([]))
