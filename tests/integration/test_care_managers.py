"""Care managers, and the members' outreach fields (quiet hours, calls, contacts' channels), through the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.integration.alert_api import (
    ADMIN,
    bearer,
    create_care_manager,
    create_member,
    running_api,
    unique,
)
from tests.integration.databases import fresh_database
from vigil.tokens import issue_token

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("care_managers")


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with running_api(database_url) as client:
        yield client


def fields(response) -> list[str]:
    return [d["field"] for d in response.json()["detail"]]


def test_a_care_manager_is_registered_and_read_back(client: TestClient) -> None:
    created = create_care_manager(client, outreach_urls=["mailto://grace@example.org", "json://127.0.0.1:9/in"])

    response = client.get(f"/api/v1/care_managers/{created['id']}", headers=ADMIN)

    assert response.status_code == 200
    read = response.json()
    assert read == created
    assert read["timezone"] == "America/New_York"
    assert read["outreach_urls"] == ["mailto://grace@example.org", "json://127.0.0.1:9/in"]
    assert read["created_at"].endswith("Z")


def test_an_id_is_generated_when_none_is_given(client: TestClient) -> None:
    response = client.post("/api/v1/care_managers", json={"name": "Katherine Johnson"}, headers=ADMIN)

    assert response.status_code == 201
    assert response.json()["id"].startswith("cm_")
    assert response.json()["timezone"] == "UTC"
    assert response.json()["outreach_urls"] == []


def test_an_id_that_is_taken_is_409(client: TestClient) -> None:
    created = create_care_manager(client)
    response = client.post("/api/v1/care_managers", json={"id": created["id"], "name": "Other"}, headers=ADMIN)
    assert response.status_code == 409
    assert created["id"] in response.json()["detail"]


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"outreach_urls": ["not a url"]}, "outreach_urls.0"),
        ({"email": "nobody"}, "email"),
        ({"phone": "call me"}, "phone"),
        ({"name": ""}, "name"),
        ({"id": "has space"}, "id"),
        ({"nickname": "G"}, "nickname"),
    ],
)
def test_an_invalid_care_manager_is_refused_naming_the_field(
    client: TestClient, overrides: dict, field_name: str
) -> None:
    body = {"name": "Grace Hopper", **overrides}
    response = client.post("/api/v1/care_managers", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert fields(response) == [field_name]


def test_only_an_admin_registers_care_managers(client: TestClient, database_url: str) -> None:
    response = client.post("/api/v1/care_managers", json={"name": "Me"}, headers=bearer(database_url, "cm-self"))
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


def test_a_care_manager_reads_their_own_record_and_no_one_else_s(client: TestClient, database_url: str) -> None:
    mine, theirs = create_care_manager(client), create_care_manager(client)
    headers = bearer(database_url, mine["id"])

    assert client.get(f"/api/v1/care_managers/{mine['id']}", headers=headers).json() == mine
    other = client.get(f"/api/v1/care_managers/{theirs['id']}", headers=headers)
    assert other.status_code == 403
    assert "own" in other.json()["detail"]
    # An id that does not exist gets the same answer, so a care manager cannot probe for ids.
    assert client.get("/api/v1/care_managers/cm-nobody", headers=headers).status_code == 403


def test_an_unknown_care_manager_is_404_for_an_admin(client: TestClient) -> None:
    response = client.get("/api/v1/care_managers/cm-nobody", headers=ADMIN)
    assert response.status_code == 404
    assert "cm-nobody" in response.json()["detail"]


def test_an_issued_admin_token_may_register_care_managers(client: TestClient, database_url: str) -> None:
    headers = {"Authorization": f"Bearer {issue_token(database_url, 'admin')}"}
    response = client.post("/api/v1/care_managers", json={"name": "Dorothy Vaughan"}, headers=headers)
    assert response.status_code == 201


# --- members: quiet hours, calls, contacts' channels -----------------------------------------------


def test_a_member_keeps_quiet_hours_calls_and_contact_channels(client: TestClient) -> None:
    contacts = [
        {"name": "Byron", "phone": "+44 20 7946 0001", "relation": "son", "outreach_url": "mailto://byron@example.org"},
        {"name": "Mary", "phone": "+44 20 7946 0002", "relation": "friend"},
    ]
    created = create_member(
        client, None, id=unique("mbr"), quiet_hours={"start": "22:00", "end": "07:00"}, contact_by_call=True,
        emergency_contacts=contacts,
    )

    read = client.get(f"/api/v1/members/{created['id']}", headers=ADMIN).json()

    assert read["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert read["contact_by_call"] is True
    assert read["emergency_contacts"][0]["outreach_url"] == "mailto://byron@example.org"
    assert read["emergency_contacts"][1]["outreach_url"] is None


def test_a_member_without_them_has_no_quiet_hours_and_is_not_called(client: TestClient) -> None:
    read = create_member(client, None)
    assert read["quiet_hours"] is None
    assert read["contact_by_call"] is False


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"quiet_hours": {"start": "22:00", "end": "22:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "24:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "7:00", "end": "08:00"}}, "quiet_hours.start"),
        ({"quiet_hours": {"start": "22:00", "end": "07:60"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end"),
        ({"quiet_hours": {"start": "22:00", "end": "07:00", "days": "all"}}, "quiet_hours.days"),
        ({"quiet_hours": "22:00-07:00"}, "quiet_hours"),
        ({"contact_by_call": "yes"}, "contact_by_call"),
        (
            {"emergency_contacts": [{"name": "B", "phone": "+44 1", "relation": "son", "outreach_url": "byron"}]},
            "emergency_contacts.0.outreach_url",
        ),
    ],
)
def test_invalid_outreach_fields_of_a_member_are_refused_naming_the_field(
    client: TestClient, overrides: dict, field_name: str
) -> None:
    body = {
        "name": "Ada", "policy": {"number": "P", "line": "health"},
        "consent": {"monitoring": True, "outreach": True, "auto_claims": False}, **overrides,
    }
    response = client.post("/api/v1/members", json=body, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert fields(response) == [field_name]
