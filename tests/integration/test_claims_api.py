"""`/api/v1/claims` against a real PostgreSQL: who sees which claims, the evidence's digest, the FHIR bundle,
confirming, and the insurer's signed answers (what they change, and that an unsigned one changes nothing)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle

from tests.integration.alert_api import ADMIN, Case, new_case, running_api, sql
from tests.integration.claim_rows import StoredClaim, insert_claim, insert_delivery
from tests.integration.databases import fresh_database
from vigil.claims.signing import sign

pytestmark = pytest.mark.infra

SECRET = "insurer-shared-secret-0123456789"
MEMBER_URL = "json://127.0.0.1:9/member"


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("claims_api")


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with running_api(database_url, VIGIL_CLAIMS_WEBHOOK_SECRET=SECRET) as client:
        yield client


@pytest.fixture
def case(client: TestClient, database_url: str) -> Case:
    """A member with a kitchen leak sensor, who is messaged through one channel."""
    return new_case(client, database_url, member={"outreach_urls": [MEMBER_URL], "address": "1 Rue de Rivoli"},
                    device={"kind": "home", "location": "kitchen"})


def claim_of(client: TestClient, claim_id: str) -> dict:
    response = client.get(f"/api/v1/claims/{claim_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def answer(client: TestClient, claim_id: str, body: dict, *, secret: str | None = SECRET) -> object:
    """POST the insurer's answer, signed with `secret` (None: unsigned), without any bearer token."""
    raw = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Vigil-Signature"] = sign(secret, raw)
    return client.post(f"/api/v1/claims/{claim_id}/status", content=raw, headers=headers)


def notices(database_url: str, claim: StoredClaim) -> list[tuple]:
    return sql(database_url, "SELECT purpose, seq, member_id, target, status FROM claim_notices WHERE claim_id = %s "
               "ORDER BY id", (claim.id,))


def test_a_claim_reads_as_the_contract_says(client: TestClient, database_url: str, case: Case) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id)

    body = claim_of(client, claim.id)

    assert body["id"] == claim.id and body["incident_id"] == claim.incident_id
    assert body["member_id"] == case.member_id and body["policy_number"] == "POL-1"
    assert (body["type"], body["line"], body["status"]) == ("water_damage", "home", "prefilled")
    assert body["location"] == {"address": "1 Rue de Rivoli", "room": "kitchen"}
    assert body["insured"]["name"] == "Ada Lovelace" and body["insured"]["phone"] == "+44 20 7946 0000"
    assert body["reported_by"] == "vigil"
    assert body["evidence_digest"] == claim.digest == body["evidence"]["digest"]
    assert body["evidence"]["url"].endswith(f"/api/v1/claims/{claim.id}/evidence")
    assert body["evidence"]["checks"]["device_registered_before_loss"] is True
    assert body["description"] == claim.document["description"] and "kitchen" in body["description"]
    assert body["loss_at"] == claim.document["loss_at"]
    assert body["created_at"].endswith("Z")
    assert [entry["status"] for entry in body["status_history"]] == ["prefilled"]
    assert body["insurer_claim_number"] is None and body["green_channel"] is False
    assert body["delivery"] is None  # not confirmed: nothing to deliver


def test_the_list_puts_green_channel_first_then_the_newest_and_filters(
    client: TestClient, database_url: str, case: Case
) -> None:
    now = datetime.now(UTC)
    older_fire = insert_claim(database_url, case.member_id, case.device_id, kind="fire",
                              created_at=now - timedelta(hours=2))
    old_leak = insert_claim(database_url, case.member_id, case.device_id, created_at=now - timedelta(hours=1))
    new_leak = insert_claim(database_url, case.member_id, case.device_id, status="submitted", created_at=now)

    listed = client.get("/api/v1/claims", params={"member_id": case.member_id}, headers=case.headers)

    assert listed.status_code == 200, listed.text
    assert [c["id"] for c in listed.json()] == [older_fire.id, new_leak.id, old_leak.id]
    assert listed.json()[0]["green_channel"] is True and listed.json()[0]["green_channel_reason"]

    def ids(**params: object) -> list[str]:
        response = client.get("/api/v1/claims", params={"member_id": case.member_id, **params}, headers=ADMIN)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()]

    assert ids(status="submitted") == [new_leak.id]
    assert ids(green_channel="true") == [older_fire.id]
    assert ids(green_channel="false") == [new_leak.id, old_leak.id]
    assert ids(limit=1) == [older_fire.id]
    assert ids(status="paid") == []
    refused = client.get("/api/v1/claims", params={"status": "lost"}, headers=ADMIN)
    assert refused.status_code == 422 and refused.json()["detail"][0]["field"] == "status"


def test_a_care_manager_sees_only_their_own_members_claims(client: TestClient, database_url: str, case: Case) -> None:
    mine = insert_claim(database_url, case.member_id, case.device_id)
    other = new_case(client, database_url)
    theirs = insert_claim(database_url, other.member_id, other.device_id, kind="accident")

    listed = client.get("/api/v1/claims", headers=case.headers).json()
    assert mine.id in {c["id"] for c in listed} and theirs.id not in {c["id"] for c in listed}
    assert {c["member_id"] for c in listed} == {case.member_id}

    refused = client.get("/api/v1/claims", params={"member_id": other.member_id}, headers=case.headers)
    assert refused.status_code == 403
    for path in ("", "/evidence", "/fhir"):
        response = client.get(f"/api/v1/claims/{theirs.id}{path}", headers=case.headers)
        assert response.status_code == 403, path
        assert response.json() == {"detail": "this member is not assigned to you"}
    confirm = client.post(f"/api/v1/claims/{theirs.id}/confirm", headers=case.headers)
    assert confirm.status_code == 403
    assert claim_of(client, theirs.id)["status"] == "prefilled"

    unknown = client.get("/api/v1/claims/00000000-0000-0000-0000-000000000000", headers=case.headers)
    assert unknown.status_code == 404 and "no claim has id" in unknown.json()["detail"]
    assert client.get("/api/v1/claims/not-a-claim", headers=case.headers).status_code == 422
    assert client.get(f"/api/v1/claims/{mine.id}").status_code == 401


def test_the_evidence_is_the_exact_bytes_of_the_digest_and_its_reading_is_audited(
    client: TestClient, database_url: str, case: Case
) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id)

    response = client.get(f"/api/v1/claims/{claim.id}/evidence", headers=case.headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == claim.evidence
    served = claim_of(client, claim.id)["evidence_digest"]
    assert served == "sha256:" + hashlib.sha256(response.content).hexdigest()
    package = response.json()
    assert package["claim_id"] == claim.id and package["readings"] and package["checks"]["readings_continuous"]
    actor = f"care_manager:{case.care_manager_id}"
    assert sql(database_url, "SELECT actor, action, subject FROM audit_log WHERE member_id = %s "
               "AND action = 'read_claim_evidence'", (case.member_id,)) == [
        (actor, "read_claim_evidence", f"claim {claim.id} evidence")]


def test_an_accident_is_served_as_a_fhir_bundle_and_other_claims_are_not(
    client: TestClient, database_url: str
) -> None:
    case = new_case(client, database_url, member={"birth_date": "1941-03-14"})
    accident = insert_claim(database_url, case.member_id, case.device_id, kind="accident",
                            outcome="emergency_dispatched")
    leak_case = new_case(client, database_url, device={"kind": "home", "location": "bathroom"})
    leak = insert_claim(database_url, leak_case.member_id, leak_case.device_id)

    response = client.get(f"/api/v1/claims/{accident.id}/fhir", headers=case.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = Bundle.model_validate(response.json())
    kinds = [entry.resource.get_resource_type() for entry in bundle.entry]
    assert kinds[0] == "Patient" and kinds[-1] == "Claim" and kinds.count("Observation") > 10
    codes = {entry.resource.code.coding[0].code for entry in bundle.entry if entry.resource.get_resource_type()
             == "Observation"}
    assert codes == {"8867-4", "2708-6"}  # heart rate and oxygen saturation
    assert sql(database_url, "SELECT count(*) FROM audit_log WHERE action = 'read_claim_fhir' AND member_id = %s",
               (case.member_id,)) == [(1,)]

    refused = client.get(f"/api/v1/claims/{leak.id}/fhir", headers=ADMIN)
    assert refused.status_code == 404
    assert refused.json()["detail"] == (f"claim {leak.id!r} is a water damage claim; FHIR is served for accident "
                                        "claims only, which health policies cover")


def test_a_care_manager_confirms_once_and_the_second_time_is_a_409(
    client: TestClient, database_url: str, case: Case
) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id)

    confirmed = client.post(f"/api/v1/claims/{claim.id}/confirm", headers=case.headers)

    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    actor = f"care_manager:{case.care_manager_id}"
    assert (body["status"], body["confirmed_by"]) == ("confirmed", actor)
    assert body["status_history"][-1]["status"] == "confirmed" and body["status_history"][-1]["by"] == actor
    # No insurer endpoint is configured in this app: the delivery waits in the outbox, held.
    assert body["delivery"]["status"] == "held" and body["delivery"]["attempts_log"] == []

    again = client.post(f"/api/v1/claims/{claim.id}/confirm", headers=case.headers)
    assert again.status_code == 409
    assert "confirmed already" in again.json()["detail"]
    assert len(claim_of(client, claim.id)["status_history"]) == 2


def test_a_claim_whose_delivery_gave_up_can_be_sent_again_once(
    client: TestClient, database_url: str, case: Case
) -> None:
    failed = insert_claim(database_url, case.member_id, case.device_id, status="failed")
    insert_delivery(database_url, failed, [(503, None, "retry"), (None, "connection refused", "failed")],
                    status="failed")
    submitted = insert_claim(database_url, case.member_id, case.device_id, status="submitted")

    sent = client.post(f"/api/v1/claims/{failed.id}/send_again", headers=case.headers)

    assert sent.status_code == 200, sent.text
    body = sent.json()
    assert body["status"] == "confirmed"
    last = body["status_history"][-1]
    assert (last["status"], last["by"], last["note"]) == ("confirmed", f"care_manager:{case.care_manager_id}",
                                                          "sent again")
    # Held: this app has no insurer endpoint. The attempts so far stay in the log; the count starts over.
    assert body["delivery"]["status"] == "held" and len(body["delivery"]["attempts_log"]) == 2
    assert sql(database_url, "SELECT attempts FROM claim_deliveries WHERE claim_id = %s", (failed.id,)) == [(0,)]
    twice = client.post(f"/api/v1/claims/{failed.id}/send_again", headers=case.headers)
    assert twice.status_code == 409 and "failed" in twice.json()["detail"]
    not_failed = client.post(f"/api/v1/claims/{submitted.id}/send_again", headers=case.headers)
    assert not_failed.status_code == 409


@pytest.mark.parametrize(
    ("secret", "signature"),
    [
        (SECRET, None),  # unsigned
        (SECRET, "sha256=" + "0" * 64),  # signed with something else
        (SECRET, "deadbeef"),  # not even the shape of a signature
    ],
)
def test_an_answer_without_the_right_signature_is_401_and_changes_nothing(
    client: TestClient, database_url: str, case: Case, secret: str, signature: str | None
) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id, status="submitted")
    before = claim_of(client, claim.id)
    raw = json.dumps({"status": "paid", "insurer_claim_number": "INS-9"}).encode()
    headers = {"Content-Type": "application/json", **({"X-Vigil-Signature": signature} if signature else {})}

    response = client.post(f"/api/v1/claims/{claim.id}/status", content=raw, headers=headers)

    assert response.status_code == 401
    assert "X-Vigil-Signature" in response.json()["detail"]
    after = claim_of(client, claim.id)
    assert (after["status"], after["insurer_claim_number"], after["status_history"]) == (
        before["status"], None, before["status_history"])
    assert notices(database_url, claim) == []


def test_without_a_configured_secret_every_answer_is_401(database_url: str) -> None:
    with running_api(database_url) as unsigned:
        case = new_case(unsigned, database_url, member={"outreach_urls": [MEMBER_URL]})
        claim = insert_claim(database_url, case.member_id, case.device_id, status="submitted")
        response = answer(unsigned, claim.id, {"status": "accepted"})
        assert response.status_code == 401
        assert claim_of(unsigned, claim.id)["status"] == "submitted"


def test_a_signed_answer_moves_the_claim_and_the_member_is_told_once(
    client: TestClient, database_url: str, case: Case
) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id, status="submitted")

    accepted = answer(client, claim.id, {"status": "accepted", "insurer_claim_number": "INS-2026-0042"})

    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["status"], body["insurer_claim_number"]) == ("accepted", "INS-2026-0042")
    last = body["status_history"][-1]
    assert (last["status"], last["by"], last["insurer_claim_number"]) == ("accepted", "insurer", "INS-2026-0042")
    told = notices(database_url, claim)
    assert told == [("status", len(body["status_history"]) - 1, case.member_id, MEMBER_URL, "pending")]

    replay = answer(client, claim.id, {"status": "accepted", "insurer_claim_number": "INS-2026-0042"})
    assert replay.status_code == 200
    assert replay.json()["status_history"] == body["status_history"]
    assert notices(database_url, claim) == told

    paid_body = {"status": "paid", "note": "Paid 1 240 EUR for the kitchen floor."}
    paid = answer(client, claim.id, paid_body)
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "paid" and paid.json()["insurer_claim_number"] == "INS-2026-0042"
    tasks = sql(database_url, "SELECT kind, member_id, care_manager_id, status FROM tasks WHERE claim_id = %s",
                (claim.id,))
    assert tasks and all(t == ("claim_follow_up", case.member_id, case.care_manager_id, "open") for t in tasks)
    told = notices(database_url, claim)
    assert [purpose for purpose, *_ in told].count("status") == 2

    # The insurer retries its callback: the same answer, note and all, changes nothing and tells no one again.
    paid_again = answer(client, claim.id, paid_body)
    assert paid_again.status_code == 200
    assert paid_again.json()["status_history"] == paid.json()["status_history"]
    assert notices(database_url, claim) == told
    assert sql(database_url, "SELECT count(*) FROM tasks WHERE claim_id = %s", (claim.id,)) == [(len(tasks),)]

    after_paid = answer(client, claim.id, {"status": "rejected"})
    assert after_paid.status_code == 409 and "paid" in after_paid.json()["detail"]


def test_a_signed_answer_is_still_checked(client: TestClient, database_url: str, case: Case) -> None:
    prefilled = insert_claim(database_url, case.member_id, case.device_id)

    never_sent = answer(client, prefilled.id, {"status": "accepted"})
    assert never_sent.status_code == 409 and "never sent" in never_sent.json()["detail"]

    wrong = answer(client, prefilled.id, {"status": "lost", "insurer_claim_number": ""})
    assert wrong.status_code == 422
    assert {p["field"] for p in wrong.json()["detail"]} == {"status", "insurer_claim_number"}

    not_json = client.post(f"/api/v1/claims/{prefilled.id}/status", content=b"{",
                           headers={"X-Vigil-Signature": sign(SECRET, b"{")})
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["field"] == "body"

    unknown = answer(client, "00000000-0000-0000-0000-000000000000", {"status": "accepted"})
    assert unknown.status_code == 404
    assert claim_of(client, prefilled.id)["status"] == "prefilled"


def test_an_answer_naming_its_claim_cannot_be_replayed_onto_another(
    client: TestClient, database_url: str, case: Case
) -> None:
    first = insert_claim(database_url, case.member_id, case.device_id, status="submitted")
    second = insert_claim(database_url, case.member_id, case.device_id, status="submitted")
    paid = {"status": "paid", "claim_id": first.id}

    replayed = answer(client, second.id, paid)

    assert replayed.status_code == 422 and replayed.json()["detail"][0]["field"] == "claim_id"
    assert claim_of(client, second.id)["status"] == "submitted"
    assert answer(client, first.id, {"status": "accepted", "claim_id": first.id}).status_code == 200


def _incident(database_url: str, member_id: str, device_id: str, *, decision: str | None) -> str:
    """An accident incident without a claim: decided with `decision`, or (None) still waiting."""
    incident_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    sql(database_url,
        "INSERT INTO incidents (id, kind, covered_by, member_id, device_id, alert_id, started_at, detected_at, event,"
        " build_due_at, decided_at, decision) VALUES (%s, 'accident', 'health', %s, %s, %s, %s, %s, '{}', %s, %s, %s)"
        " RETURNING id",
        (incident_id, member_id, device_id, str(uuid.uuid4()), now - timedelta(minutes=5), now, now,
         now if decision else None, decision))
    return incident_id


def test_incidents_say_what_became_of_each_and_why_some_have_no_claim(
    client: TestClient, database_url: str, case: Case
) -> None:
    claimed = insert_claim(database_url, case.member_id, case.device_id)
    refused = _incident(database_url, case.member_id, case.device_id,
                        decision="no claim: an accident is covered by a health policy, and this one is home only")
    waiting = _incident(database_url, case.member_id, case.device_id, decision=None)

    every = client.get("/api/v1/incidents", params={"member_id": case.member_id}, headers=case.headers)

    assert every.status_code == 200, every.text
    by_id = {i["id"]: i for i in every.json()}
    assert set(by_id) == {claimed.incident_id, refused, waiting}
    assert by_id[claimed.incident_id]["claim_id"] == claimed.id
    assert "home only" in by_id[refused]["decision"] and by_id[refused]["claim_id"] is None
    assert by_id[waiting]["decided_at"] is None
    for outcome, expected in (("claim", claimed.incident_id), ("no_claim", refused), ("pending", waiting)):
        answer_ = client.get("/api/v1/incidents", params={"member_id": case.member_id, "outcome": outcome},
                             headers=case.headers)
        assert [i["id"] for i in answer_.json()] == [expected], outcome
    stranger = new_case(client, database_url)
    assert client.get("/api/v1/incidents", params={"member_id": case.member_id},
                      headers=stranger.headers).status_code == 403
    assert client.get("/api/v1/incidents", headers=stranger.headers).json() == []
