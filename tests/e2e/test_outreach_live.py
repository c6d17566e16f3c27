"""Outreach through the live pipeline: alerts raised from MQTT readings reach people's channels on the ladder.

The channels are real: Apprise posts `json://` messages to a local HTTP inbox. The ladder is shortened
(care manager at 4 s, contacts at 8 s) so a test walks it in seconds; the API and the scheduler both run
as processes with that ladder, as `vigil run` would start them.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
import uuid
from datetime import timedelta

import httpx
import pytest

from simulators.inbox import Arrival, Inbox
from tests.e2e.support import DevicePublisher, ServiceProcess, message, now, wait_for
from vigil.tokens import issue_token

pytestmark = pytest.mark.infra

LADDER = {
    "critical": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 4},
                 {"to": "emergency_contacts", "after_s": 8}],
    "high": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 4}],
}
REPLY_LINK = re.compile(r"https?://\S+/r/[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def outreach(pipeline):
    """The pipeline's API restarted with the short ladder, a scheduler, and an inbox for every channel."""
    settings = pipeline.settings
    public_url = f"http://127.0.0.1:{settings.api_port}"
    overrides = {"VIGIL_ESCALATION": json.dumps(LADDER), "VIGIL_PUBLIC_URL": public_url}
    os.environ.update(overrides)
    scheduler = ServiceProcess("scheduler-outreach", "scheduler", settings.state_dir / "logs")
    inbox = Inbox().start()
    try:
        # The API plans each alert's ladder in the transaction that stores it, so it must know this one.
        pipeline.api_service.stop()
        pipeline.api_service.start()
        wait_for(pipeline._api_up, 60, what="the API to answer again")
        scheduler.start()
        yield inbox
    finally:
        scheduler.stop()
        inbox.stop()
        for name in overrides:
            os.environ.pop(name, None)
        pipeline.api_service.stop()
        pipeline.api_service.start()
        wait_for(pipeline._api_up, 60, what="the API to answer with the default ladder")
    assert "Traceback" not in scheduler.log_text()


def _household(pipeline, inbox: Inbox) -> tuple[str, str, object]:
    """A care manager, a member with a contact, each with a channel into the inbox, and a kitchen sensor."""
    tag = uuid.uuid4().hex[:8]
    care_manager = f"cm-{tag}"
    answer = pipeline.api.post("/api/v1/care_managers", json={
        "id": care_manager, "name": "Casey Manager", "timezone": "Europe/London",
        "outreach_urls": [inbox.url(f"cm-{tag}")]})
    assert answer.status_code == 201, answer.text
    answer = pipeline.api.post("/api/v1/members", json={
        "name": "Robin Member", "birth_date": "1944-03-02", "phone": "+15550123", "timezone": "Europe/Paris",
        "address": "3 Rue de Test, Paris", "policy": {"number": f"POL-{tag}", "line": "home"},
        "care_manager_id": care_manager, "consent": {"monitoring": True, "outreach": True, "auto_claims": False},
        "outreach_urls": [inbox.url(f"member-{tag}")],
        "emergency_contacts": [{"name": "Alex Kin", "phone": "+15550124", "relation": "son",
                                "outreach_url": inbox.url(f"contact-{tag}")}]})
    assert answer.status_code == 201, answer.text
    device = pipeline.register_device("home", member_id=answer.json()["id"], location="kitchen")
    return tag, care_manager, device


def _sound_smoke_alarm(pipeline, device) -> tuple[str, float]:
    """Smoke for 45 s, just ended: the smoke rule raises a critical alert. Its id and raised time (epoch s)."""
    end = now()
    readings = [(end - timedelta(seconds=s), "smoke", 1) for s in (45, 30, 15, 0)]
    with DevicePublisher(pipeline.settings, device) as pub:
        pub.publish(message(device.device_id, 1, readings))
    rows = wait_for(lambda: pipeline.query(
        "SELECT id::text, extract(epoch FROM raised_at)::float8 FROM alerts WHERE device_id = %s AND type = 'smoke'",
        device.device_id), 30, what="the smoke alert")
    return rows[0]


def _to(inbox: Inbox, path: str) -> list[Arrival]:
    return [a for a in inbox.arrivals if a.path == path]


def test_a_smoke_alarm_nobody_answers_walks_the_whole_ladder_on_time(pipeline, outreach):
    tag, _, device = _household(pipeline, outreach)
    alert_id, raised_at = _sound_smoke_alarm(pipeline, device)

    member = outreach.wait_for(lambda a: a.path == f"/member-{tag}", 15)
    manager = outreach.wait_for(lambda a: a.path == f"/cm-{tag}", 20)
    contact = outreach.wait_for(lambda a: a.path == f"/contact-{tag}", 25)
    time.sleep(3)  # room for anything sent twice to arrive

    assert member and manager and contact, [a.path for a in outreach.arrivals]
    lateness = {"member": member.at - raised_at, "care_manager": manager.at - (raised_at + 4),
                "emergency_contacts": contact.at - (raised_at + 8)}
    print(f"\nseconds after each step fell due: {lateness}")
    assert all(-0.5 < late < 5 for late in lateness.values()), lateness
    assert [len(_to(outreach, f"/{who}-{tag}")) for who in ("member", "cm", "contact")] == [1, 1, 1]
    assert REPLY_LINK.search(member.body)
    assert "Robin Member" in manager.body and "Robin Member" in contact.body
    alert = pipeline.api.get(f"/api/v1/alerts/{alert_id}").json()
    assert alert["status"] == "escalated"
    log = pipeline.api.get(f"/api/v1/alerts/{alert_id}/outreach").json()
    assert sorted((row["to"], row["status"]) for row in log) == [
        ("care_manager", "sent"), ("emergency_contact", "sent"), ("member", "sent")]


def test_the_members_im_ok_stops_the_ladder_before_the_care_manager(pipeline, outreach):
    tag, _, device = _household(pipeline, outreach)
    alert_id, _ = _sound_smoke_alarm(pipeline, device)

    member = outreach.wait_for(lambda a: a.path == f"/member-{tag}", 15)
    assert member is not None
    link = REPLY_LINK.search(member.body).group(0)
    assert httpx.get(link, timeout=10).status_code == 200
    assert httpx.post(link, timeout=10).status_code == 200
    time.sleep(10)  # past both later steps' due times

    assert _to(outreach, f"/cm-{tag}") == [] and _to(outreach, f"/contact-{tag}") == []
    alert = pipeline.api.get(f"/api/v1/alerts/{alert_id}").json()
    assert (alert["status"], alert["outcome"]) == ("resolved", "member_ok")
    assert httpx.post(link, timeout=10).status_code in (404, 410)


def test_a_care_managers_acknowledgement_stops_the_ladder(pipeline, outreach):
    tag, care_manager, device = _household(pipeline, outreach)
    alert_id, _ = _sound_smoke_alarm(pipeline, device)
    assert outreach.wait_for(lambda a: a.path == f"/member-{tag}", 15) is not None

    token = issue_token(pipeline.settings.database_url, "care_manager", care_manager)
    answer = pipeline.api.post(f"/api/v1/alerts/{alert_id}/ack", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["acknowledged_by"] == f"care_manager:{care_manager}"
    time.sleep(10)

    assert _to(outreach, f"/cm-{tag}") == [] and _to(outreach, f"/contact-{tag}") == []
    history = [entry["action"] for entry in pipeline.api.get(f"/api/v1/alerts/{alert_id}").json()["history"]]
    assert "acknowledged" in history


def test_every_member_of_a_burst_is_told_and_the_delays_are_reported(pipeline, outreach):
    households = [_household(pipeline, outreach) for _ in range(10)]
    raised = [_sound_smoke_alarm(pipeline, device) for _, _, device in households]

    delays = []
    for (tag, _, _), (_, raised_at) in zip(households, raised, strict=True):
        arrival = outreach.wait_for(lambda a, tag=tag: a.path == f"/member-{tag}", 20)
        assert arrival is not None, f"member-{tag} was never told"
        delays.append(arrival.at - raised_at)
    delays.sort()
    print(f"\nalert raised -> member's channel, s: median {statistics.median(delays):.3f}, "
          f"max {delays[-1]:.3f}, all {[round(d, 3) for d in delays]}")
    assert all(d < 10 for d in delays)
