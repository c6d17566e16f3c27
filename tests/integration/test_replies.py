"""The member's one-tap "I'm OK" link (`/r/{token}`) against a real PostgreSQL: it works once, only for its
alert, and expires when the alert is resolved."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from alerts.reply_tokens import issue_reply_token, issue_reply_token_sync, reply_url
from tests.integration.alert_api import (
    ADMIN,
    Case,
    insert_alert,
    insert_steps,
    new_case,
    running_api,
    sql,
    steps_of,
)
from tests.integration.databases import fresh_database
from vigil.tokens import token_digest

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("replies")


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with running_api(database_url) as client:
        yield client


@pytest.fixture
def case(client: TestClient, database_url: str) -> Case:
    return new_case(client, database_url, member={"timezone": "Europe/Paris"}, device={"location": "kitchen"})


def token_for(database_url: str, alert_id: str) -> str:
    with psycopg.connect(database_url) as conn:
        return issue_reply_token_sync(conn, alert_id)


def alert(client: TestClient, alert_id: str) -> dict:
    return client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).json()


def visible_text(page: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def test_the_page_says_what_happened_in_plain_words_with_one_button(
    client: TestClient, database_url: str, case: Case
) -> None:
    raised = datetime(2026, 11, 22, 13, 5, 30, tzinfo=UTC)
    alert_id = insert_alert(database_url, case.member_id, case.device_id, raised_at=raised)
    token = token_for(database_url, alert_id)

    response = client.get(f"/r/{token}")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    text = visible_text(response.text)
    assert "Hello Ada" in text
    # Triggered 5 s before it was raised, shown on the member's clock (Paris is UTC+1 in November).
    assert "Your wearable (kitchen) noticed a possible fall at 14:05 on Sunday 22 November (Europe/Paris)." in text
    assert re.findall(r"<form[^>]*>", response.text) == ['<form method="post">']
    assert re.findall(r"<button[^>]*>([^<]*)</button>", response.text) == ["I'm OK"]
    assert "<script" not in response.text
    assert alert(client, alert_id)["status"] == "open"  # looking changes nothing


def test_i_m_ok_resolves_the_alert_as_member_ok_and_stops_the_ladder(
    client: TestClient, database_url: str, case: Case
) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=10)
    alert_id = insert_alert(database_url, case.member_id, case.device_id, raised_at=raised)
    insert_steps(database_url, alert_id, [
        (1, "member", "done", raised),
        (2, "care_manager", "pending", raised + timedelta(seconds=60)),
    ])
    token = token_for(database_url, alert_id)

    response = client.post(f"/r/{token}")

    assert response.status_code == 200
    assert "told your care manager" in visible_text(response.text)
    resolved = alert(client, alert_id)
    assert (resolved["status"], resolved["outcome"]) == ("resolved", "member_ok")
    entry = resolved["history"][-1]
    assert (entry["action"], entry["by"], entry["outcome"], entry["via"]) == (
        "resolved", "member", "member_ok", "reply_link",
    )
    assert [s[3] for s in steps_of(database_url, alert_id)] == ["done", "stopped"]


def test_the_link_works_once(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    token = token_for(database_url, alert_id)
    assert client.post(f"/r/{token}").status_code == 200

    again = client.post(f"/r/{token}")
    page = client.get(f"/r/{token}")

    assert again.status_code == page.status_code == 410
    assert "already told us that you are OK" in visible_text(again.text)
    assert "<button" not in page.text
    assert [e["action"] for e in alert(client, alert_id)["history"]] == ["raised", "resolved"]


def test_the_link_works_only_for_its_own_alert(client: TestClient, database_url: str, case: Case) -> None:
    mine = insert_alert(database_url, case.member_id, case.device_id, alert_type="fall")
    other = insert_alert(database_url, case.member_id, case.device_id, alert_type="tachycardia")
    token = token_for(database_url, mine)
    token_for(database_url, other)

    assert client.post(f"/r/{token}").status_code == 200

    assert alert(client, mine)["status"] == "resolved"
    assert alert(client, other)["status"] == "open"


def test_a_link_in_a_grouped_message_answers_every_alert_it_listed(
    client: TestClient, database_url: str, case: Case
) -> None:
    leak = insert_alert(database_url, case.member_id, case.device_id, alert_type="water_leak")
    heart = insert_alert(database_url, case.member_id, case.device_id, alert_type="tachycardia")
    apart = insert_alert(database_url, case.member_id, case.device_id, alert_type="fall")
    with psycopg.connect(database_url) as conn:
        token = issue_reply_token_sync(conn, leak, heart)
    client.post(f"/api/v1/alerts/{heart}/resolve", json={"outcome": "assisted"}, headers=case.headers)

    assert client.post(f"/r/{token}").status_code == 200

    assert [(alert(client, a)["status"], alert(client, a)["outcome"]) for a in (leak, heart, apart)] == [
        ("resolved", "member_ok"), ("resolved", "assisted"), ("open", None)]
    assert client.post(f"/r/{token}").status_code == 410


def test_the_link_expires_when_the_care_manager_resolves_the_alert(
    client: TestClient, database_url: str, case: Case
) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    token = token_for(database_url, alert_id)
    resolved = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "assisted"}, headers=case.headers)
    assert resolved.status_code == 200

    for response in (client.get(f"/r/{token}"), client.post(f"/r/{token}")):
        assert response.status_code == 410
        assert "already been dealt with" in visible_text(response.text)
    assert alert(client, alert_id)["outcome"] == "assisted"


def test_an_acknowledged_alert_is_still_resolved_by_the_member(
    client: TestClient, database_url: str, case: Case
) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    token = token_for(database_url, alert_id)
    client.post(f"/api/v1/alerts/{alert_id}/ack", headers=case.headers)

    assert client.post(f"/r/{token}").status_code == 200
    assert alert(client, alert_id)["outcome"] == "member_ok"


@pytest.mark.parametrize("token", ["A" * 43, "short", "x" * 200, "A" * 42 + "!", "%00" * 10])
def test_an_unknown_link_is_a_404_page_in_plain_words(client: TestClient, token: str) -> None:
    for response in (client.get(f"/r/{token}"), client.post(f"/r/{token}")):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "This link does not work" in visible_text(response.text)


async def test_only_a_digest_of_a_token_is_stored(database_url: str, case: Case) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        token = await issue_reply_token(conn, alert_id)

    stored = sql(database_url, "SELECT token_sha256 FROM reply_tokens WHERE alert_id = %s", (alert_id,))

    assert stored == [(token_digest(token),)]
    assert len(token) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)


def test_each_message_gets_a_token_of_its_own(database_url: str, case: Case) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    assert token_for(database_url, alert_id) != token_for(database_url, alert_id)


def test_the_link_is_built_on_the_public_url() -> None:
    assert reply_url("https://vigil.example.org/", "abc") == "https://vigil.example.org/r/abc"
    assert reply_url("http://127.0.0.1:8080", "abc") == "http://127.0.0.1:8080/r/abc"
