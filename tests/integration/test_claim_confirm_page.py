"""The member's one-step confirmation link (`/c/{token}`) against a real PostgreSQL: the page says what the
claim says in plain words and the member's own clock, one tap sends it, and a second tap is told kindly."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.integration.alert_api import ADMIN, Case, new_case, running_api, sql
from tests.integration.claim_rows import StoredClaim, insert_claim
from tests.integration.databases import fresh_database
from vigil.settings import Settings
from vigil.storage.claims import ClaimSettings, request_confirmation

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("claim_confirm")


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with running_api(database_url) as client:
        yield client


@pytest.fixture
def case(client: TestClient, database_url: str) -> Case:
    return new_case(client, database_url, member={"timezone": "Europe/Paris", "address": "1 Rue de Rivoli, Paris"},
                    device={"kind": "home", "location": "kitchen"})


def link_for(database_url: str, claim: StoredClaim) -> str:
    """The member's link, made as the claims bridge makes it (its token, and the request to confirm)."""
    config = ClaimSettings.from_settings(Settings(_env_file=None, DATABASE_URL=database_url))

    async def issue() -> str:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await request_confirmation(conn, claim.id, now=datetime.now(UTC), config=config)

    return f"/c/{asyncio.run(issue())}"


def status_of(database_url: str, claim: StoredClaim) -> tuple:
    [row] = sql(database_url, "SELECT status, confirmed_by, jsonb_array_length(status_history) FROM claims "
                "WHERE id = %s", (claim.id,))
    return row


def visible_text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_page_says_what_the_claim_says_with_one_button(client: TestClient, database_url: str, case: Case) -> None:
    loss = datetime(2026, 11, 22, 13, 2, tzinfo=UTC)
    claim = insert_claim(database_url, case.member_id, case.device_id, loss_at=loss)
    link = link_for(database_url, claim)

    response = client.get(link)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    text = visible_text(response.text)
    assert "Hello Ada" in text
    assert "What happened Water damage" in text
    # 13:02 UTC is 14:02 in Paris in November.
    assert "When 14:02 on Sunday 22 November (Europe/Paris)" in text
    assert "Where Kitchen, 1 Rue de Rivoli, Paris" in text
    assert visible_text(claim.document["description"]) in text
    assert "Your policy POL-1" in text
    assert re.findall(r"<form[^>]*>", response.text) == ['<form method="post">']
    assert re.findall(r"<button[^>]*>([^<]*)</button>", response.text) == ["Send my claim"]
    assert "<script" not in response.text
    assert status_of(database_url, claim) == ("prefilled", None, 1)  # looking changes nothing


def test_one_tap_sends_the_claim_and_a_second_is_told_kindly(
    client: TestClient, database_url: str, case: Case
) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id)
    link = link_for(database_url, claim)

    sent = client.post(link)

    assert sent.status_code == 200
    assert "We are sending your claim to your insurer now." in visible_text(sent.text)
    assert status_of(database_url, claim) == ("confirmed", "member", 2)
    assert sql(database_url, "SELECT status FROM claim_deliveries WHERE claim_id = %s", (claim.id,)) == [("held",)]
    api = client.get(f"/api/v1/claims/{claim.id}", headers=ADMIN).json()
    assert api["status_history"][-1]["by"] == "member"

    again = client.post(link)
    assert again.status_code == 200
    assert "You have already sent this claim." in visible_text(again.text)
    assert "<button" not in again.text
    assert status_of(database_url, claim) == ("confirmed", "member", 2)

    page = client.get(link)
    assert page.status_code == 200 and "Already sent" in page.text and "<button" not in page.text


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("submitted", "your insurer has it"),
        ("accepted", "your insurer has answered it"),
        ("failed", "your care manager will call you"),
    ],
)
def test_a_claim_past_confirmation_says_where_it_stands(
    client: TestClient, database_url: str, case: Case, status: str, words: str
) -> None:
    claim = insert_claim(database_url, case.member_id, case.device_id)
    link = link_for(database_url, claim)
    sql(database_url, "UPDATE claims SET status = %s WHERE id = %s", (status, claim.id))

    for response in (client.get(link), client.post(link)):
        assert response.status_code == 200
        assert words in visible_text(response.text)
        assert "<form" not in response.text
    assert status_of(database_url, claim)[0] == status


@pytest.mark.parametrize("token", ["not-a-token", "A" * 32, "x" * 500])
def test_an_unknown_link_is_a_404_page(client: TestClient, token: str) -> None:
    for response in (client.get(f"/c/{token}"), client.post(f"/c/{token}")):
        assert response.status_code == 404
        assert "This link does not work" in response.text
