"""The care managers' task list and the audit log of health-data reads, through the API on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.integration.alert_api import (
    ADMIN,
    Case,
    insert_alert,
    insert_task,
    new_case,
    running_api,
    sql,
)
from tests.integration.databases import fresh_database
from vigil.tokens import issue

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("tasks_audit")


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with running_api(database_url) as client:
        yield client


@pytest.fixture
def case(client: TestClient, database_url: str) -> Case:
    return new_case(client, database_url)


@pytest.fixture
def other(client: TestClient, database_url: str) -> Case:
    """A second care manager with a member of their own."""
    return new_case(client, database_url)


def field_names(response) -> list[str]:
    return [d["field"] for d in response.json()["detail"]]


# --- tasks ------------------------------------------------------------------------------------------


def test_a_care_manager_sees_their_own_members_open_tasks_soonest_first(
    client: TestClient, database_url: str, case: Case, other: Case
) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    now = datetime.now(UTC)
    later = insert_task(database_url, case.member_id, alert_id=alert_id, step=2, due_at=now + timedelta(hours=1))
    sooner = insert_task(database_url, case.member_id, alert_id=alert_id, step=1, due_at=now)
    check_in = insert_task(database_url, case.member_id, alert_id=alert_id, kind="check_in", step=0,
                           due_at=now + timedelta(days=1))
    theirs = insert_task(database_url, other.member_id)

    tasks = client.get("/api/v1/tasks", headers=case.headers).json()

    assert [t["id"] for t in tasks] == [sooner, later, check_in]
    assert tasks[0]["member_name"] == "Ada Lovelace"
    assert tasks[0]["alert_id"] == alert_id
    assert (tasks[0]["kind"], tasks[0]["status"], tasks[0]["step"]) == ("call", "open", 1)
    assert tasks[0]["care_manager_id"] == case.care_manager_id
    calls = client.get("/api/v1/tasks?kind=call", headers=case.headers).json()
    assert [t["id"] for t in calls] == [sooner, later]
    everyone = {t["id"] for t in client.get("/api/v1/tasks?limit=1000", headers=ADMIN).json()}
    assert {sooner, later, check_in, theirs} <= everyone


def test_tasks_of_another_care_manager_s_member_are_refused(
    client: TestClient, case: Case, other: Case
) -> None:
    response = client.get(f"/api/v1/tasks?member_id={other.member_id}", headers=case.headers)
    assert response.status_code == 403


def test_a_task_is_done_once_with_who_when_and_a_note(client: TestClient, database_url: str, case: Case) -> None:
    task_id = insert_task(database_url, case.member_id)

    response = client.post(f"/api/v1/tasks/{task_id}/done", json={"note": "reached her, all well"},
                           headers=case.headers)

    assert response.status_code == 200, response.text
    task = response.json()
    assert (task["status"], task["note"]) == ("done", "reached her, all well")
    assert task["done_by"] == f"care_manager:{case.care_manager_id}"
    assert abs(datetime.fromisoformat(task["done_at"]) - datetime.now(UTC)) < timedelta(seconds=10)
    assert client.get("/api/v1/tasks", headers=case.headers).json() == []
    assert [t["id"] for t in client.get("/api/v1/tasks?status=done", headers=case.headers).json()] == [task_id]
    again = client.post(f"/api/v1/tasks/{task_id}/done", headers=case.headers)
    assert again.status_code == 409
    assert "done already" in again.json()["detail"]


def test_a_task_is_done_without_a_body(client: TestClient, database_url: str, case: Case) -> None:
    response = client.post(f"/api/v1/tasks/{insert_task(database_url, case.member_id)}/done", headers=ADMIN)
    assert response.status_code == 200
    assert (response.json()["done_by"], response.json()["note"]) == ("admin:env", None)


def test_another_care_manager_s_task_cannot_be_done(
    client: TestClient, database_url: str, case: Case, other: Case
) -> None:
    task_id = insert_task(database_url, other.member_id)
    response = client.post(f"/api/v1/tasks/{task_id}/done", headers=case.headers)
    assert response.status_code == 403
    assert sql(database_url, "SELECT status FROM tasks WHERE id = %s", (task_id,)) == [("open",)]


@pytest.mark.parametrize(
    ("url", "body", "status", "field_name"),
    [
        ("/api/v1/tasks/999999999/done", None, 404, None),
        ("/api/v1/tasks/0/done", None, 422, "task_id"),
        ("/api/v1/tasks/99999999999999999999/done", None, 422, "task_id"),
        ("/api/v1/tasks/1/done", {"note": ""}, 422, "note"),
        ("/api/v1/tasks/1/done", {"note": "x" * 2001}, 422, "note"),
        ("/api/v1/tasks?status=closed", None, 422, "status"),
        ("/api/v1/tasks?kind=visit", None, 422, "kind"),
        ("/api/v1/tasks?limit=0", None, 422, "limit"),
        ("/api/v1/tasks?stauts=open", None, 422, "stauts"),
    ],
)
def test_task_requests_are_checked(
    client: TestClient, url: str, body: dict | None, status: int, field_name: str | None
) -> None:
    response = client.post(url, json=body, headers=ADMIN) if url.endswith("/done") else client.get(url, headers=ADMIN)
    assert response.status_code == status, response.text
    if field_name is not None:
        assert field_names(response) == [field_name]


# --- the audit log ----------------------------------------------------------------------------------


def audit_rows(client: TestClient, member_id: str) -> list[dict]:
    response = client.get(f"/api/v1/audit?member_id={member_id}", headers=ADMIN)
    assert response.status_code == 200
    return response.json()


def test_reading_readings_is_audited_with_who_what_and_when(client: TestClient, case: Case) -> None:
    response = client.get(f"/api/v1/devices/{case.device_id}/readings?metric=heart_rate", headers=case.headers)
    assert response.status_code == 200

    [row] = audit_rows(client, case.member_id)

    assert (row["actor"], row["role"], row["action"]) == (
        f"care_manager:{case.care_manager_id}", "care_manager", "read_readings",
    )
    assert row["member_id"] == case.member_id
    assert case.device_id in row["subject"] and "metric=heart_rate" in row["subject"]
    assert abs(datetime.fromisoformat(row["at"]) - datetime.now(UTC)) < timedelta(seconds=10)


def test_reading_an_alert_is_audited(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).status_code == 200

    [row] = audit_rows(client, case.member_id)

    assert (row["actor"], row["role"], row["action"], row["subject"]) == (
        "admin:env", "admin", "read_alert", f"alert {alert_id}",
    )


def test_listing_alerts_is_audited_once_per_request_with_its_filters(
    client: TestClient, database_url: str, case: Case
) -> None:
    for alert_type in ("tachycardia", "bradycardia", "low_spo2"):
        insert_alert(database_url, case.member_id, case.device_id, alert_type=alert_type)
    listed = client.get(f"/api/v1/alerts?member_id={case.member_id}&status=open", headers=case.headers).json()
    assert len(listed) == 3

    [row] = audit_rows(client, case.member_id)

    assert row["action"] == "list_alerts"
    assert row["subject"] == f"member_id={case.member_id}&status=open&limit=100"


def test_an_unfiltered_alert_list_is_audited_without_a_member(client: TestClient, database_url: str) -> None:
    issued = issue(database_url, "admin")
    assert client.get("/api/v1/alerts?status=resolved", headers={"Authorization": f"Bearer {issued.token}"}).is_success

    rows = client.get("/api/v1/audit?limit=10", headers=ADMIN).json()

    mine = [r for r in rows if r["actor"] == f"admin:{issued.id}"]
    assert [(r["action"], r["member_id"], r["subject"]) for r in mine] == [
        ("list_alerts", None, "status=resolved&limit=100"),
    ]


def test_a_refused_read_is_not_audited(client: TestClient, database_url: str, case: Case, other: Case) -> None:
    alert_id = insert_alert(database_url, case.member_id, case.device_id)
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=other.headers).status_code == 403
    assert client.get(f"/api/v1/devices/{case.device_id}/readings", headers=other.headers).status_code == 403
    assert audit_rows(client, case.member_id) == []


def test_the_audit_log_is_newest_first_and_filtered_by_time(client: TestClient, case: Case) -> None:
    client.get(f"/api/v1/devices/{case.device_id}/readings", headers=case.headers)
    between = datetime.now(UTC)
    client.get(f"/api/v1/alerts?member_id={case.member_id}", headers=case.headers)

    rows = audit_rows(client, case.member_id)
    since = client.get(
        "/api/v1/audit", params={"member_id": case.member_id, "since": between.isoformat()}, headers=ADMIN
    ).json()
    limited = client.get(f"/api/v1/audit?member_id={case.member_id}&limit=1", headers=ADMIN).json()

    assert [r["action"] for r in rows] == ["list_alerts", "read_readings"]
    assert [r["action"] for r in since] == ["list_alerts"]
    assert limited == rows[:1]


def test_only_an_admin_reads_the_audit_log(client: TestClient, case: Case) -> None:
    response = client.get("/api/v1/audit", headers=case.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("query", "field_name"),
    [("since=yesterday", "since"), ("limit=0", "limit"), ("member_id=a b", "member_id"), ("actor=x", "actor")],
)
def test_audit_filters_are_checked(client: TestClient, query: str, field_name: str) -> None:
    response = client.get(f"/api/v1/audit?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert field_names(response) == [field_name]
