"""Claims through the live pipeline: readings over MQTT end as one delivered, evidenced claim, and the
member hears how it goes.

Everything is real: ingest, the stream worker, the API and the claims bridge as processes, a stand-in
insurer (`simulators.insurer`) that checks Vigil's signature, and an inbox for the member's `json://`
channel. The claim is built once the incident's alert has ended (or at most VIGIL_CLAIM_SETTLE_S
after the incident), so the description can say how long the loss lasted.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import threading
import uuid
from datetime import timedelta

import httpx
import pytest

from simulators.inbox import Inbox
from simulators.insurer import Insurer
from tests.e2e.support import DevicePublisher, ServiceProcess, message, minutes_ago, wait_for
from vigil.tokens import issue_token

pytestmark = pytest.mark.infra

SECRET = "e2e-claims-signing-secret"
CONFIRM_LINK = re.compile(r"https?://\S+/c/[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def claims(pipeline):
    """The API restarted to know the insurer's secret, a claims bridge, the insurer and an inbox."""
    settings = pipeline.settings
    insurer = Insurer(SECRET).start()
    inbox = Inbox().start()
    overrides = {"VIGIL_CLAIMS_WEBHOOK_URL": insurer.url, "VIGIL_CLAIMS_WEBHOOK_SECRET": SECRET,
                 "VIGIL_PUBLIC_URL": f"http://127.0.0.1:{settings.api_port}", "VIGIL_CLAIM_SETTLE_S": "120",
                 "VIGIL_CLAIMS_RETRY_MAX_S": "2"}
    os.environ.update(overrides)
    bridge = ServiceProcess("claims", "claims_bridge", settings.state_dir / "logs")
    try:
        pipeline.api_service.stop()
        pipeline.api_service.start()
        wait_for(pipeline._api_up, 60, what="the API to answer again")
        bridge.start()
        yield insurer, inbox
    finally:
        bridge.stop()
        insurer.stop()
        inbox.stop()
        for name in overrides:
            os.environ.pop(name, None)
        pipeline.api_service.stop()
        pipeline.api_service.start()
        wait_for(pipeline._api_up, 60, what="the API to answer without the claims settings")
    assert "Traceback" not in bridge.log_text()


def _member(pipeline, inbox: Inbox, *, line: str, auto_claims: bool,
            birth_date: str = "1948-05-09") -> tuple[str, dict]:
    tag = uuid.uuid4().hex[:8]
    body = {"name": "Dana Example", "birth_date": birth_date, "phone": "+15550142", "email": "dana@example.org",
            "address": "7 Rue des Essais, 75011 Paris", "timezone": "Europe/Paris",
            "policy": {"number": f"POL-{tag}", "line": line}, "care_manager_id": f"cm-{tag}",
            "consent": {"monitoring": True, "outreach": True, "auto_claims": auto_claims},
            "outreach_urls": [inbox.url(f"member-{tag}")],
            "emergency_contacts": [{"name": "Sam Example", "phone": "+15550143", "relation": "son"}]}
    answer = pipeline.api.post("/api/v1/care_managers", json={"id": f"cm-{tag}", "name": "Casey Manager"})
    assert answer.status_code == 201, answer.text
    answer = pipeline.api.post("/api/v1/members", json=body)
    assert answer.status_code == 201, answer.text
    return tag, answer.json()


def _timing(pipeline, claim_id: str) -> tuple[float, float]:
    """Seconds (wall clock) from the incident being found, and from its alert's end being stored, to delivery."""
    rows = pipeline.query(
        "SELECT extract(epoch FROM d.delivered_at - i.received_at), extract(epoch FROM d.delivered_at - a.updated_at)"
        " FROM claims c JOIN incidents i ON i.id = c.incident_id JOIN claim_deliveries d ON d.claim_id = c.id"
        " JOIN alerts a ON a.id = c.alert_id WHERE c.id = %s", claim_id)
    return float(rows[0][0]), float(rows[0][1])


def _leak(pipeline, device, start) -> None:
    """Wet for 25 minutes from `start`, then dry for 6: the alert clears after 5 dry minutes."""
    with DevicePublisher(pipeline.settings, device) as pub:
        for minute in range(31):
            wet = 1 if minute < 25 else 0
            pub.publish(message(device.device_id, minute + 1, [
                (start + timedelta(minutes=minute, seconds=s), "water_leak", wet) for s in (0, 15, 30, 45)]))


def _claim_of(pipeline, incident_alert_device: str, timeout_s: float) -> dict:
    rows = wait_for(lambda: pipeline.query("SELECT id::text FROM claims WHERE device_id = %s",
                                           incident_alert_device), timeout_s, what="the claim")
    assert len(rows) == 1, rows
    return pipeline.api.get(f"/api/v1/claims/{rows[0][0]}").json()


def test_a_25_minute_leak_ends_as_one_delivered_water_damage_claim_and_the_member_hears_it_is_accepted(
        pipeline, claims):
    insurer, inbox = claims
    tag, member = _member(pipeline, inbox, line="home", auto_claims=True)
    device = pipeline.register_device("home", member_id=member["id"], location="kitchen")
    start = minutes_ago(40)
    _leak(pipeline, device, start)

    claim = _claim_of(pipeline, device.device_id, 60)
    filed = insurer.wait_for_claim(claim["id"], 30)

    assert filed is not None, "the insurer never received the claim"
    assert (claim["type"], claim["line"]) == ("water_damage", "home")
    assert claim["policy_number"] == member["policy"]["number"]
    assert claim["location"] == {"address": "7 Rue des Essais, 75011 Paris", "room": "kitchen"}
    assert claim["loss_at"].startswith(start.strftime("%Y-%m-%dT%H:%M:%S"))
    assert claim["insured"]["name"] == "Dana Example" and claim["reported_by"] == "vigil"
    assert "kitchen" in claim["description"] and "25 minutes" in claim["description"]
    assert filed.claim["id"] == claim["id"] and filed.claim["policy_number"] == member["policy"]["number"]
    evidence = pipeline.api.get(f"/api/v1/claims/{claim['id']}/evidence")
    assert "sha256:" + hashlib.sha256(evidence.content).hexdigest() == claim["evidence_digest"]
    assert evidence.json()["checks"]["device_registered_before_loss"] is False  # registered a moment ago
    wait_for(lambda: pipeline.api.get(f"/api/v1/claims/{claim['id']}").json()["status"] == "submitted", 15,
             what="the claim to be submitted")

    answer = insurer.answer(str(pipeline.api.base_url), claim["id"], "accepted", number="INS-4471")
    assert answer.status_code == 200, answer.text
    told = inbox.wait_for(lambda a: a.path == f"/member-{tag}" and "INS-4471" in a.body, 20)

    assert told is not None, [a.body for a in inbox.arrivals if a.path == f"/member-{tag}"]
    after = pipeline.api.get(f"/api/v1/claims/{claim['id']}").json()
    assert (after["status"], after["insurer_claim_number"]) == ("accepted", "INS-4471")
    assert [e["status"] for e in after["status_history"]] == ["prefilled", "confirmed", "submitted", "accepted"]
    assert insurer.deliveries == len(insurer.filed)  # nothing sent twice
    timing = _timing(pipeline, claim["id"])
    print(f"\nincident found -> claim delivered: {timing[0]:.3f} s; alert's end stored -> claim delivered: "
          f"{timing[1]:.3f} s")


def test_a_fall_becomes_a_prefilled_accident_claim_the_member_confirms_in_one_tap(pipeline, claims):
    insurer, inbox = claims
    tag, member = _member(pipeline, inbox, line="health", auto_claims=False, birth_date="1940-02-11")
    device = pipeline.register_device("wearable", member_id=member["id"])
    start = minutes_ago(12)
    readings = [(start, "fall", 1)]
    for second in range(0, 8 * 60, 30):  # down and still for 8 minutes, worn, heart rate up
        at = start + timedelta(seconds=second)
        readings += [(at, "steps", 0), (at, "worn", 1), (at, "heart_rate", 104), (at, "spo2", 95)]
    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish(message(device.device_id, 1, readings))
    alert_id = wait_for(lambda: pipeline.query("SELECT id::text FROM alerts WHERE device_id = %s AND type = 'fall'",
                                               device.device_id), 30, what="the fall alert")[0][0]
    token = issue_token(pipeline.settings.database_url, "care_manager", f"cm-{tag}")
    resolved = pipeline.api.post(f"/api/v1/alerts/{alert_id}/resolve", headers={"Authorization": f"Bearer {token}"},
                                 json={"outcome": "emergency_dispatched", "note": "ambulance called"})
    assert resolved.status_code == 200, resolved.text

    claim = _claim_of(pipeline, device.device_id, 30)
    request = inbox.wait_for(lambda a: a.path == f"/member-{tag}" and CONFIRM_LINK.search(a.body), 20)

    assert (claim["type"], claim["status"], claim["green_channel"]) == ("accident", "prefilled", True)
    assert request is not None, [a.body for a in inbox.arrivals if a.path == f"/member-{tag}"]
    assert insurer.wait_for_claim(claim["id"], 3) is None  # nothing leaves before the member confirms
    bundle = pipeline.api.get(f"/api/v1/claims/{claim['id']}/fhir").json()
    codes = {c["code"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
             for c in e["resource"]["code"]["coding"]}
    assert {"8867-4", "2708-6"} <= codes
    link = CONFIRM_LINK.search(request.body).group(0)
    assert httpx.get(link, timeout=10).status_code == 200
    assert httpx.post(link, timeout=10).status_code == 200

    filed = insurer.wait_for_claim(claim["id"], 30)
    assert filed is not None and filed.claim["confirmation"]["by"] == "member"
    assert filed.claim["type"] == "accident"


def test_ten_leaks_at_once_become_ten_claims_each_delivered_once(pipeline, claims):
    insurer, inbox = claims
    devices = []
    for _ in range(10):
        _, member = _member(pipeline, inbox, line="both", auto_claims=True)
        devices.append(pipeline.register_device("home", member_id=member["id"], location="bathroom"))
    start = minutes_ago(40)
    publishers = [threading.Thread(target=_leak, args=(pipeline, device, start)) for device in devices]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join()

    ids = [_claim_of(pipeline, device.device_id, 90)["id"] for device in devices]
    filed = [insurer.wait_for_claim(claim_id, 60) for claim_id in ids]

    assert all(filed), [claim_id for claim_id, f in zip(ids, filed, strict=True) if f is None]
    attempts = pipeline.query("SELECT count(*) FROM claim_delivery_attempts WHERE claim_id = ANY(%s::uuid[])", ids)
    assert attempts[0][0] == 10  # one POST each: no retries, nothing twice
    found, ended = zip(*(_timing(pipeline, claim_id) for claim_id in ids), strict=True)
    print(f"\n10 leaks: incident found -> claim delivered p50 {statistics.median(found):.3f} s, "
          f"max {max(found):.3f} s; alert's end stored -> claim delivered p50 {statistics.median(ended):.3f} s, "
          f"max {max(ended):.3f} s")


def test_a_smoke_alarm_sounding_three_minutes_becomes_a_green_channel_fire_claim(pipeline, claims):
    insurer, inbox = claims
    _, member = _member(pipeline, inbox, line="home", auto_claims=True)
    device = pipeline.register_device("home", member_id=member["id"], location="living room")
    start = minutes_ago(15)
    with DevicePublisher(pipeline.settings, device) as pub:
        for minute in range(10):  # sounding for 3 minutes, then silent: the alert clears after 5 quiet minutes
            smoke = 1 if minute < 3 else 0
            pub.publish(message(device.device_id, minute + 1, [
                (start + timedelta(minutes=minute, seconds=s), "smoke", smoke) for s in (0, 15, 30, 45)]))

    claim = _claim_of(pipeline, device.device_id, 60)
    filed = insurer.wait_for_claim(claim["id"], 30)

    assert filed is not None
    assert (claim["type"], claim["line"], claim["green_channel"]) == ("fire", "home", True)
    assert claim["location"]["room"] == "living room" and "living room" in claim["description"]
    assert claim["fire_service_attended"] == "unknown" and "fire_service_attended" in claim["unknowns"]
    assert filed.claim["green_channel"] is True
