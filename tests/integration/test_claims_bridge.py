"""Incidents become claims: one real bridge process for the module, a real insurer endpoint, and a real HTTP
receiver for the member's notices (Apprise `json://`). Incidents are stored as the bridge's consumer stores
them (`claims_bridge.incident_store.insert_incidents`); the consumer itself is tested with a real broker in
test_claims_consumer.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.integration.claims_peers import (
    BridgeProcess,
    Insurer,
    add_alert,
    add_device,
    add_member,
    bridge_env,
    claim_row,
    claim_status,
    incident_event,
    leak,
    store_incidents,
)
from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import JsonReceiver, sql, wait_for
from vigil.claims.building import claim_id as claim_id_of
from vigil.settings import Settings
from vigil.storage.claims import ClaimSettings, confirm_claim

pytestmark = pytest.mark.infra

REMINDER_S = 4


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("claims_bridge")


@pytest.fixture(scope="module")
def insurer():
    insurer = Insurer()
    yield insurer
    insurer.close()


@pytest.fixture(scope="module")
def inbox():
    receiver = JsonReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def bridge(database_url: str, insurer: Insurer, tmp_path_factory: pytest.TempPathFactory):
    env = bridge_env(database_url, webhook_url=insurer.url, CLAIM_REMINDER_S=REMINDER_S)
    process = BridgeProcess("bridge", env, tmp_path_factory.mktemp("claims-bridge")).start()
    wait_for(lambda: "claims bridge running" in process.log_text(), 20, what="the bridge to start")
    yield process
    assert process.stop() == 0
    # The only tracebacks are those of incidents that could not be built (logged on purpose, then decided).
    log = process.log_text()
    assert log.count("Traceback") == log.count("building the claim of incident"), log[-4000:]


def decision(database_url: str, incident_id: str) -> tuple[str | None, str | None]:
    """The incident's (decision, claim id), both None while undecided."""
    [(text, claim)] = sql(database_url, "SELECT decision, claim_id::text FROM incidents WHERE id = %s", (incident_id,))
    return text, claim


def decided(database_url: str, incident_id: str) -> bool:
    return decision(database_url, incident_id)[0] is not None


def notices(database_url: str, claim_id: str) -> list[tuple[str, str, str | None]]:
    return sql(database_url, "SELECT purpose, status, reason FROM claim_notices WHERE claim_id = %s ORDER BY id",
               (claim_id,))


def test_with_consent_the_claim_is_confirmed_delivered_and_the_member_told(database_url, bridge, insurer, inbox):
    event, claim_id = leak(database_url, "b-auto", auto_claims=True, urls=(inbox.url("b-auto"),))
    wait_for(lambda: claim_status(database_url, claim_id) == "submitted", 20, what="the claim to be submitted")

    assert decision(database_url, event.incident_id) == ("claim opened", claim_id)
    claim = claim_row(database_url, claim_id)
    assert (claim["type"], claim["line"], claim["policy_number"]) == ("water_damage", "home", "P-b-auto")
    assert claim["loss_at"] == datetime.fromtimestamp(event.started_at_ms / 1000, UTC)
    assert [(e["status"], e["by"]) for e in claim["status_history"][:2]] == [
        ("prefilled", "vigil"), ("confirmed", "consent:auto_claims")]
    delivered = json.loads(insurer.first_bodies[claim_id])
    assert delivered["policy_number"] == "P-b-auto"
    assert delivered["location"] == {"address": "3 rue des Lilas, 69003 Lyon", "room": "kitchen"}
    assert delivered["confirmation"]["by"] == "consent:auto_claims"
    told = wait_for(lambda: inbox.at("b-auto"), 10, what="the member's notice of the submitted claim")
    assert len(told) == 1
    assert [(purpose, status) for purpose, status, _ in notices(database_url, claim_id)] == [("status", "sent")]


def test_without_consent_the_claim_waits_and_the_member_is_asked_then_reminded_once(database_url, bridge, inbox):
    before = datetime.now(UTC)
    _, claim_id = leak(database_url, "b-ask", auto_claims=False, urls=(inbox.url("b-ask"),))
    wait_for(lambda: inbox.at("b-ask"), 20, what="the request to confirm")
    assert claim_status(database_url, claim_id) == "prefilled"
    request = inbox.at("b-ask")[0]
    assert "https://vigil.example.org/c/" in request.message
    [(due,)] = sql(database_url, "SELECT next_attempt_at FROM claim_notices WHERE claim_id = %s AND "
                   "purpose = 'confirm_reminder'", (claim_id,))
    assert before + timedelta(seconds=REMINDER_S) <= due <= datetime.now(UTC) + timedelta(seconds=REMINDER_S)

    wait_for(lambda: len(inbox.at("b-ask")) == 2, REMINDER_S + 10, what="the reminder")
    assert [(p, s) for p, s, _ in notices(database_url, claim_id)] == [("confirm_request", "sent"),
                                                                      ("confirm_reminder", "sent")]
    time.sleep(2)
    assert len(inbox.at("b-ask")) == 2, "reminded once, then left"
    assert claim_status(database_url, claim_id) == "prefilled"


def test_a_claim_confirmed_before_its_reminder_is_delivered_and_the_reminder_skipped(database_url, bridge, insurer,
                                                                                    inbox):
    _, claim_id = leak(database_url, "b-conf", auto_claims=False, urls=(inbox.url("b-conf"),))
    wait_for(lambda: inbox.at("b-conf"), 20, what="the request to confirm")

    async def confirm() -> None:  # as POST /claims/{id}/confirm does
        config = ClaimSettings.from_settings(Settings(_env_file=None, DATABASE_URL=database_url,
                                                      VIGIL_CLAIMS_WEBHOOK_URL=insurer.url,
                                                      VIGIL_CLAIMS_WEBHOOK_SECRET=insurer.secret))
        async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
            await confirm_claim(conn, claim_id, by="member", now=datetime.now(UTC), config=config)

    asyncio.run(confirm())
    wait_for(lambda: claim_status(database_url, claim_id) == "submitted", 20, what="the claim to be submitted")
    assert insurer.accepted[claim_id] == 1
    wait_for(lambda: ("confirm_reminder", "skipped") in [(p, s) for p, s, _ in notices(database_url, claim_id)],
             REMINDER_S + 10, what="the reminder to be skipped")
    [reason] = [r for p, _, r in notices(database_url, claim_id) if p == "confirm_reminder"]
    assert reason == "not sent: the claim is submitted now, so there is nothing left to confirm"
    # Asked once, then told it was sent; never reminded.
    assert len(inbox.at("b-conf")) == 2


def test_a_home_only_policy_owes_no_claim_for_an_accident(database_url, bridge):
    add_member(database_url, "b-home", line="home", auto_claims=True)
    device = add_device(database_url, "b-home", kind="wearable", location=None)
    fell = datetime.now(UTC) - timedelta(minutes=10)
    alert = add_alert(database_url, "b-home", device, alert_type="fall", triggered_at=fell, cleared_at=fell)
    event = incident_event("b-home", device, alert, started_at=fell, detected_at=fell, kind="accident",
                           covered_by="health", alert_type="fall", location=None)
    store_incidents(database_url, [event])

    wait_for(lambda: decided(database_url, event.incident_id), 20, what="the incident to be decided")
    assert decision(database_url, event.incident_id) == (
        "no claim: an accident is covered by a health policy, and policy P-b-home is home only", None)
    assert sql(database_url, "SELECT count(*) FROM claims WHERE member_id = 'b-home'") == [(0,)]


def test_the_same_incident_stored_twice_is_one_claim(database_url, bridge):
    event, claim_id = leak(database_url, "b-twice", auto_claims=False)
    assert store_incidents(database_url, [event, event]) == []
    wait_for(lambda: decided(database_url, event.incident_id), 20, what="the incident to be decided")
    assert store_incidents(database_url, [event]) == []  # redelivered after the claim was opened
    time.sleep(1.5)
    assert sql(database_url, "SELECT id::text FROM claims WHERE member_id = 'b-twice'") == [(claim_id,)]
    assert sql(database_url, "SELECT count(*) FROM incidents WHERE member_id = 'b-twice'") == [(1,)]


def test_the_claim_waits_for_the_alert_to_clear(database_url, bridge):
    add_member(database_url, "b-wait")
    device = add_device(database_url, "b-wait")
    started = datetime.now(UTC) - timedelta(minutes=21)
    alert = add_alert(database_url, "b-wait", device, triggered_at=started)
    event = incident_event("b-wait", device, alert, started_at=started, detected_at=datetime.now(UTC))
    store_incidents(database_url, [event], settle_s=3600)

    time.sleep(2.5)  # the builder polls every second and is woken by the new incident
    assert not decided(database_url, event.incident_id), "built while the water was still there"
    cleared = datetime.now(UTC).replace(microsecond=0)
    sql(database_url, "UPDATE alerts SET cleared_at = %s WHERE id = %s", (cleared, alert))
    wait_for(lambda: decided(database_url, event.incident_id), 10, what="the claim once the alert cleared")
    document = claim_row(database_url, claim_id_of(event.incident_id))["document"]
    assert document["ended_at"] is not None


def test_the_claim_is_built_at_build_due_at_when_the_alert_never_clears(database_url, bridge):
    add_member(database_url, "b-due")
    device = add_device(database_url, "b-due")
    started = datetime.now(UTC) - timedelta(minutes=21)
    alert = add_alert(database_url, "b-due", device, triggered_at=started)
    event = incident_event("b-due", device, alert, started_at=started, detected_at=datetime.now(UTC))
    store_incidents(database_url, [event], settle_s=4)
    [(due,)] = sql(database_url, "SELECT build_due_at FROM incidents WHERE id = %s", (event.incident_id,))

    time.sleep(1.5)
    assert not decided(database_url, event.incident_id)
    wait_for(lambda: decided(database_url, event.incident_id), 10, what="the claim at build_due_at")
    [(decided_at,)] = sql(database_url, "SELECT decided_at FROM incidents WHERE id = %s", (event.incident_id,))
    assert decided_at >= due
    assert claim_status(database_url, claim_id_of(event.incident_id)) == "prefilled"


def test_a_fire_goes_to_the_green_channel(database_url, bridge):
    add_member(database_url, "b-fire")
    device = add_device(database_url, "b-fire", location="living room")
    started = datetime.now(UTC) - timedelta(minutes=15)
    alert = add_alert(database_url, "b-fire", device, alert_type="smoke", triggered_at=started,
                      cleared_at=started + timedelta(minutes=5), severity="critical")
    event = incident_event("b-fire", device, alert, started_at=started, detected_at=started, kind="fire",
                           alert_type="smoke", location="living room")
    store_incidents(database_url, [event])
    wait_for(lambda: decided(database_url, event.incident_id), 20, what="the fire's claim")
    claim = claim_row(database_url, claim_id_of(event.incident_id))
    assert claim["type"] == "fire" and claim["green_channel"] is True
    assert claim["document"]["green_channel_reason"]


def test_the_evidence_digest_is_the_sha256_of_the_stored_evidence_bytes(database_url, bridge):
    event, claim_id = leak(database_url, "b-evidence", lasted_min=25)
    wait_for(lambda: claim_status(database_url, claim_id), 20, what="the claim")
    claim = claim_row(database_url, claim_id)
    evidence = bytes(claim["evidence"])
    assert claim["evidence_digest"] == "sha256:" + hashlib.sha256(evidence).hexdigest()
    assert claim["document"]["evidence"]["digest"] == claim["evidence_digest"]
    package = json.loads(evidence)
    assert package["claim_id"] == claim_id and package["incident"]["id"] == event.incident_id
    # 30 dry minutes before the leak, 25 wet ones (the window runs from 30 minutes before the loss).
    leak_values = [r["value"] for r in package["readings"] if r["metric"] == "water_leak"]
    assert leak_values.count(1) == 25 and leak_values.count(0) == 30
    assert package["checks"]["readings_continuous"] is True
    assert package["checks"]["device_registered_before_loss"] is True
    assert [a["id"] for a in package["alerts"]] == [event.alert_id]


def test_a_deleted_member_or_a_broken_policy_is_decided_and_the_queue_goes_on(database_url, bridge):
    now = datetime.now(UTC) - timedelta(minutes=30)
    gone = incident_event("b-gone", "dev-b-gone", "0b6c5c4e-2b1a-4a57-9f0e-8d7c6b5a4f31", started_at=now,
                          detected_at=now)
    add_member(database_url, "b-broken", policy={"line": "home"})
    device = add_device(database_url, "b-broken")
    alert = add_alert(database_url, "b-broken", device, triggered_at=now, cleared_at=now)
    broken = incident_event("b-broken", device, alert, started_at=now, detected_at=now)
    store_incidents(database_url, [gone, broken])
    event, claim_id = leak(database_url, "b-after")

    wait_for(lambda: all(decided(database_url, e.incident_id) for e in (gone, broken, event)), 20,
             what="all three incidents decided")
    assert decision(database_url, gone.incident_id) == ("no claim: member b-gone no longer exists", None)
    assert decision(database_url, broken.incident_id) == (
        "not built: ValueError: member b-broken's policy has no number", None)
    assert decision(database_url, event.incident_id) == ("claim opened", claim_id)
    assert "building the claim of incident" in bridge.log_text()
