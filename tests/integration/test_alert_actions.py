"""What care managers do to an alert through the API, against a real PostgreSQL: each action, what it does to
the alert's row, history and ladder steps, and what is refused (409, 403, 404, 422 naming the field)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from alerts.actions import act
from tests.integration.alert_api import (
    ADMIN,
    Case,
    bearer,
    create_care_manager,
    insert_alert,
    insert_steps,
    insert_task,
    new_case,
    running_api,
    sql,
    steps_of,
)
from tests.integration.databases import fresh_database
from vigil.alerting.lifecycle import Acknowledge, ActionRefused
from vigil.timefmt import utc_text
from vigil.tokens import issue

pytestmark = pytest.mark.infra

OUTCOMES = ["false_alarm", "member_ok", "assisted", "emergency_dispatched", "no_action_needed"]


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("alert_actions")


@pytest.fixture(scope="module")
def client(database_url: str) -> Iterator[TestClient]:
    with running_api(database_url) as client:
        yield client


@pytest.fixture
def case(client: TestClient, database_url: str) -> Case:
    return new_case(client, database_url)


def new_alert(database_url: str, case: Case, **kwargs: object) -> str:
    return insert_alert(database_url, case.member_id, case.device_id, **kwargs)


def critical_ladder(database_url: str, alert_id: str, raised_at: datetime, *, member_state: str = "done") -> None:
    """The default critical ladder: member at 0 s, care manager at 60 s, contacts at 300 s."""
    insert_steps(database_url, alert_id, [
        (1, "member", member_state, raised_at),
        (2, "care_manager", "pending", raised_at + timedelta(seconds=60)),
        (3, "emergency_contacts", "pending", raised_at + timedelta(seconds=300)),
    ])


def post(client: TestClient, alert_id: str, action: str, headers: dict, body: dict | None = None):
    return client.post(f"/api/v1/alerts/{alert_id}/{action}", json=body, headers=headers)


def last_entry(alert: dict) -> dict:
    return alert["history"][-1]


def near_now(text: str, *, plus: timedelta = timedelta(0)) -> bool:
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return abs(at - (datetime.now(UTC) + plus)) < timedelta(seconds=10)


def states(database_url: str, alert_id: str) -> list[str]:
    return [row[3] for row in steps_of(database_url, alert_id)]


# --- acknowledge ------------------------------------------------------------------------------------


def test_acknowledging_records_who_and_when_and_stops_the_ladder(
    client: TestClient, database_url: str, case: Case
) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=20)
    alert_id = new_alert(database_url, case, raised_at=raised)
    critical_ladder(database_url, alert_id, raised)

    response = post(client, alert_id, "ack", case.headers)

    assert response.status_code == 200, response.text
    alert = response.json()
    assert alert["status"] == "acknowledged"
    assert alert["acknowledged_by"] == f"care_manager:{case.care_manager_id}"
    assert near_now(alert["acknowledged_at"])
    assert last_entry(alert)["action"] == "acknowledged"
    assert last_entry(alert)["by"] == f"care_manager:{case.care_manager_id}"
    assert near_now(last_entry(alert)["at"])
    assert alert["next_step"] is None
    assert states(database_url, alert_id) == ["done", "stopped", "stopped"]
    [(note,)] = sql(database_url, "SELECT DISTINCT note FROM alert_steps WHERE alert_id = %s AND state = 'stopped'",
                    (alert_id,))
    assert note == f"acknowledged by care_manager:{case.care_manager_id}"
    # What the action answered is what is stored.
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=case.headers).json() == alert


def test_acknowledging_twice_is_409_saying_why(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case)
    assert post(client, alert_id, "ack", case.headers).status_code == 200

    response = post(client, alert_id, "ack", ADMIN)

    assert response.status_code == 409
    assert "acknowledged already" in response.json()["detail"]
    alert = client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).json()
    assert alert["acknowledged_by"] == f"care_manager:{case.care_manager_id}"
    assert [e["action"] for e in alert["history"]] == ["raised", "acknowledged"]


async def test_two_acknowledgements_at_once_are_ordered_by_the_row_lock(database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case)

    async def acknowledge(by: str) -> dict:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await act(conn, alert_id, Acknowledge(by=by), datetime.now(UTC))

    results = await asyncio.gather(acknowledge("admin:a"), acknowledge("admin:b"), return_exceptions=True)

    [winner] = [r for r in results if isinstance(r, dict)]
    [refused] = [r for r in results if isinstance(r, ActionRefused)]
    assert "acknowledged already" in str(refused)
    [(history,)] = sql(database_url, "SELECT history FROM alerts WHERE id = %s", (alert_id,))
    assert [(e["action"], e.get("by")) for e in history] == [
        ("raised", None), ("acknowledged", winner["acknowledged_by"]),
    ]


def test_an_escalated_alert_can_be_acknowledged(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case, status="escalated")
    response = post(client, alert_id, "ack", case.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"


# --- resolve ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_resolving_records_the_outcome_and_note_and_stops_the_ladder(
    client: TestClient, database_url: str, case: Case, outcome: str
) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=20)
    alert_id = new_alert(database_url, case, raised_at=raised)
    critical_ladder(database_url, alert_id, raised)

    response = post(client, alert_id, "resolve", case.headers, {"outcome": outcome, "note": "spoke to her"})

    assert response.status_code == 200, response.text
    alert = response.json()
    assert (alert["status"], alert["outcome"]) == ("resolved", outcome)
    assert near_now(alert["resolved_at"])
    entry = last_entry(alert)
    assert (entry["action"], entry["outcome"], entry["note"]) == ("resolved", outcome, "spoke to her")
    assert entry["by"] == f"care_manager:{case.care_manager_id}"
    assert states(database_url, alert_id) == ["done", "stopped", "stopped"]
    assert alert["next_step"] is None


def test_an_acknowledged_alert_is_resolved_without_a_note(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case)
    post(client, alert_id, "ack", case.headers)
    response = post(client, alert_id, "resolve", case.headers, {"outcome": "false_alarm"})
    assert response.status_code == 200
    assert "note" not in last_entry(response.json())
    # Acknowledged first: who acknowledged stays on the record.
    assert response.json()["acknowledged_by"] == f"care_manager:{case.care_manager_id}"


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({}, "outcome"),
        ({"outcome": "fine"}, "outcome"),
        ({"outcome": "member_ok", "note": ""}, "note"),
        ({"outcome": "member_ok", "note": "x" * 2001}, "note"),
        ({"outcome": "member_ok", "reason": "x"}, "reason"),
    ],
)
def test_a_resolve_without_a_valid_outcome_is_422_naming_the_field(
    client: TestClient, database_url: str, case: Case, body: dict, field_name: str
) -> None:
    alert_id = new_alert(database_url, case)
    response = post(client, alert_id, "resolve", case.headers, body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == [field_name]
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).json()["status"] == "open"


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("ack", None),
        ("resolve", {"outcome": "assisted"}),
        ("escalate", None),
        ("snooze", {"minutes": 10}),
        ("assign", None),  # filled in with a real care manager below
        ("calls", {"note": "called her"}),
    ],
)
def test_a_resolved_alert_refuses_every_action_but_a_note(
    client: TestClient, database_url: str, case: Case, action: str, body: dict | None
) -> None:
    alert_id = new_alert(database_url, case)
    post(client, alert_id, "resolve", case.headers, {"outcome": "member_ok"})
    if action == "assign":
        body = {"care_manager_id": case.care_manager_id}

    response = post(client, alert_id, action, case.headers, body)

    assert response.status_code == 409, response.text
    assert "resolved already" in response.json()["detail"]
    assert [e["action"] for e in client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).json()["history"]] == [
        "raised", "resolved",
    ]


def test_a_note_is_added_to_a_resolved_alert(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case)
    post(client, alert_id, "resolve", case.headers, {"outcome": "member_ok"})

    response = post(client, alert_id, "notes", ADMIN, {"text": "family confirmed all is well"})

    assert response.status_code == 200
    entry = last_entry(response.json())
    assert (entry["action"], entry["text"], entry["by"]) == ("note_added", "family confirmed all is well", "admin:env")
    assert response.json()["status"] == "resolved"


# --- escalate ---------------------------------------------------------------------------------------


def test_escalating_brings_the_next_pending_step_forward_to_now(
    client: TestClient, database_url: str, case: Case
) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=5)
    alert_id = new_alert(database_url, case, raised_at=raised)
    critical_ladder(database_url, alert_id, raised)

    response = post(client, alert_id, "escalate", case.headers)

    assert response.status_code == 200, response.text
    alert = response.json()
    assert alert["status"] == "escalated"
    assert last_entry(alert)["action"] == "escalated"
    assert alert["next_step"]["step"] == 2
    assert alert["next_step"]["to"] == "care_manager"
    assert near_now(alert["next_step"]["due_at"])
    steps = steps_of(database_url, alert_id)
    assert [s[3] for s in steps] == ["done", "pending", "pending"]
    # Only the next step moves: the contacts keep their time.
    assert steps[2][4] == raised + timedelta(seconds=300)


def test_escalating_after_an_acknowledgement_restarts_the_ladder_from_the_next_step(
    client: TestClient, database_url: str, case: Case
) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=5)
    alert_id = new_alert(database_url, case, raised_at=raised)
    critical_ladder(database_url, alert_id, raised)
    post(client, alert_id, "ack", case.headers)
    before = datetime.now(UTC)

    response = post(client, alert_id, "escalate", case.headers)

    assert response.status_code == 200
    assert response.json()["status"] == "escalated"
    steps = steps_of(database_url, alert_id)
    assert [(s[0], s[1], s[2], s[3]) for s in steps] == [
        (1, "member", "ladder", "done"),
        (2, "care_manager", "ladder", "stopped"),
        (3, "emergency_contacts", "ladder", "stopped"),
        (4, "care_manager", "ladder", "pending"),
        (5, "emergency_contacts", "ladder", "pending"),
    ]
    # The care manager now, the contacts as long after as the ladder has them after the care manager.
    assert before <= steps[3][4] <= datetime.now(UTC)
    assert steps[4][4] - steps[3][4] == timedelta(seconds=240)
    assert response.json()["next_step"]["step"] == 4


def test_escalating_when_everyone_was_told_tells_the_last_recipient_again(
    client: TestClient, database_url: str, case: Case
) -> None:
    raised = datetime.now(UTC) - timedelta(minutes=10)
    alert_id = new_alert(database_url, case, raised_at=raised, severity="high", status="escalated")
    insert_steps(database_url, alert_id, [
        (1, "member", "done", raised),
        (2, "care_manager", "done", raised + timedelta(seconds=300)),
    ])

    response = post(client, alert_id, "escalate", ADMIN)

    assert response.status_code == 200
    assert steps_of(database_url, alert_id)[-1][:4] == (3, "care_manager", "repeat", "pending")
    assert response.json()["next_step"]["to"] == "care_manager"


def test_escalating_an_alert_without_a_ladder_starts_the_configured_one(database_url: str, case: Case) -> None:
    ladder = '{"medium": [{"to": "care_manager", "after_s": 0}, {"to": "emergency_contacts", "after_s": 90}]}'
    with running_api(database_url, VIGIL_ESCALATION=ladder) as client:
        alert_id = new_alert(database_url, case, severity="medium", alert_type="low_spo2")
        response = post(client, alert_id, "escalate", case.headers)
    assert response.status_code == 200
    steps = steps_of(database_url, alert_id)
    assert [(s[0], s[1], s[3]) for s in steps] == [(1, "care_manager", "pending"), (2, "emergency_contacts", "pending")]
    assert steps[1][4] - steps[0][4] == timedelta(seconds=90)


def test_escalating_ends_a_snooze(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case)
    post(client, alert_id, "snooze", case.headers, {"minutes": 60})
    response = post(client, alert_id, "escalate", case.headers)
    assert response.json()["snoozed_until"] is None


# --- snooze -----------------------------------------------------------------------------------------


def test_snoozing_holds_the_next_step_until_the_snooze_ends(client: TestClient, database_url: str, case: Case) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=5)
    alert_id = new_alert(database_url, case, raised_at=raised)
    critical_ladder(database_url, alert_id, raised)

    response = post(client, alert_id, "snooze", case.headers, {"minutes": 30})

    assert response.status_code == 200
    alert = response.json()
    assert near_now(alert["snoozed_until"], plus=timedelta(minutes=30))
    assert alert["status"] == "open"
    assert alert["next_step"] == {"step": 2, "to": "care_manager", "due_at": alert["snoozed_until"]}
    entry = last_entry(alert)
    assert (entry["action"], entry["minutes"], entry["until"]) == ("snoozed", 30, alert["snoozed_until"])
    # The steps keep their planned times; the step policy defers them until the snooze ends.
    assert states(database_url, alert_id) == ["done", "pending", "pending"]


@pytest.mark.parametrize("body", [{"minutes": 0}, {"minutes": 1441}, {"minutes": "ten"}, {"minutes": 1.5}, {}])
def test_a_snooze_outside_1_to_1440_minutes_is_422_naming_minutes(
    client: TestClient, database_url: str, case: Case, body: dict
) -> None:
    response = post(client, new_alert(database_url, case), "snooze", case.headers, body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["minutes"]


# --- notes, assign, calls -------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": "x" * 2001}, {"text": "a\u0000b"}])
def test_a_note_needs_1_to_2000_characters(client: TestClient, database_url: str, case: Case, body: dict) -> None:
    response = post(client, new_alert(database_url, case), "notes", case.headers, body)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["text"]


def test_assigning_names_the_care_manager_and_who_had_it_before(
    client: TestClient, database_url: str, case: Case
) -> None:
    colleague = create_care_manager(client)["id"]
    alert_id = new_alert(database_url, case)

    first = post(client, alert_id, "assign", case.headers, {"care_manager_id": case.care_manager_id})
    second = post(client, alert_id, "assign", case.headers, {"care_manager_id": colleague})

    assert first.json()["assigned_to"] == case.care_manager_id
    assert second.json()["assigned_to"] == colleague
    entry = last_entry(second.json())
    assert (entry["action"], entry["to"], entry["previously"]) == ("assigned", colleague, case.care_manager_id)


@pytest.mark.parametrize("care_manager_id", ["cm-nobody", "not valid"])
def test_assigning_to_an_unknown_care_manager_is_422_naming_it(
    client: TestClient, database_url: str, case: Case, care_manager_id: str
) -> None:
    alert_id = new_alert(database_url, case)
    response = post(client, alert_id, "assign", case.headers, {"care_manager_id": care_manager_id})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["care_manager_id"]
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).json()["assigned_to"] is None


def test_logging_a_call_records_it_and_completes_the_alert_s_open_call_tasks(
    client: TestClient, database_url: str, case: Case
) -> None:
    alert_id = new_alert(database_url, case)
    other_alert = new_alert(database_url, case, alert_type="tachycardia")
    calls = [insert_task(database_url, case.member_id, alert_id=alert_id, step=n) for n in (1, 2)]
    elsewhere = insert_task(database_url, case.member_id, alert_id=other_alert, step=1)
    check_in = insert_task(database_url, case.member_id, alert_id=alert_id, kind="check_in", step=0)

    response = post(client, alert_id, "calls", case.headers, {"note": "she is fine, sat down", "reached": True})

    assert response.status_code == 200, response.text
    entry = last_entry(response.json())
    assert entry["action"] == "call_logged"
    assert entry["text"] == "she is fine, sat down"
    assert entry["reached"] is True
    assert entry["tasks_done"] == calls
    assert entry["by"] == f"care_manager:{case.care_manager_id}"
    assert response.json()["status"] == "open"  # a call is on the record; it does not decide the alert
    rows = dict(sql(database_url, "SELECT id, status FROM tasks WHERE member_id = %s", (case.member_id,)))
    assert [rows[t] for t in calls] == ["done", "done"]
    assert (rows[elsewhere], rows[check_in]) == ("open", "open")
    [(done_by, note)] = sql(database_url, "SELECT DISTINCT done_by, note FROM tasks WHERE id = ANY(%s)", (calls,))
    assert (done_by, note) == (f"care_manager:{case.care_manager_id}", "she is fine, sat down")


def test_a_call_without_a_note_is_422(client: TestClient, database_url: str, case: Case) -> None:
    response = post(client, new_alert(database_url, case), "calls", case.headers, {"reached": False})
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["note"]


# --- who may act, on what ---------------------------------------------------------------------------

ACTIONS = [
    ("ack", None),
    ("resolve", {"outcome": "false_alarm"}),
    ("escalate", None),
    ("snooze", {"minutes": 5}),
    ("notes", {"text": "n"}),
    ("calls", {"note": "n"}),
]


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_a_care_manager_cannot_act_on_another_s_member(
    client: TestClient, database_url: str, case: Case, action: str, body: dict | None
) -> None:
    alert_id = new_alert(database_url, case)
    stranger = bearer(database_url, create_care_manager(client)["id"])

    response = post(client, alert_id, action, stranger, body)

    assert response.status_code == 403
    assert response.json() == {"detail": "this member is not assigned to you"}
    alert = client.get(f"/api/v1/alerts/{alert_id}", headers=ADMIN).json()
    assert (alert["status"], len(alert["history"])) == ("open", 1)


@pytest.mark.parametrize(("action", "body"), [*ACTIONS, ("assign", {"care_manager_id": "cm-x"})])
def test_acting_on_an_unknown_alert_is_404(client: TestClient, action: str, body: dict | None) -> None:
    response = post(client, str(uuid.uuid4()), action, ADMIN, body)
    assert response.status_code == 404
    assert "no alert" in response.json()["detail"]


def test_a_malformed_alert_id_is_422_naming_it(client: TestClient) -> None:
    response = post(client, "alert-1", "ack", ADMIN)
    assert response.status_code == 422
    assert [d["field"] for d in response.json()["detail"]] == ["alert_id"]


def test_actions_without_a_token_are_401(client: TestClient, database_url: str, case: Case) -> None:
    assert post(client, new_alert(database_url, case), "ack", {}).status_code == 401


def test_history_names_an_issued_admin_token_by_its_id(client: TestClient, database_url: str, case: Case) -> None:
    issued = issue(database_url, "admin")
    response = post(client, new_alert(database_url, case), "ack", {"Authorization": f"Bearer {issued.token}"})
    assert last_entry(response.json())["by"] == f"admin:{issued.id}"
    assert response.json()["acknowledged_by"] == f"admin:{issued.id}"


def test_an_action_notifies_the_console_and_the_scheduler(client: TestClient, database_url: str, case: Case) -> None:
    alert_id = new_alert(database_url, case)
    critical_ladder(database_url, alert_id, datetime.now(UTC))
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN vigil_alerts")
        listener.execute("LISTEN vigil_ladder")

        post(client, alert_id, "ack", case.headers)

        received = {(n.channel, n.payload) for n in listener.notifies(timeout=2, stop_after=2)}
    assert received == {("vigil_alerts", alert_id), ("vigil_ladder", alert_id)}


def test_the_alert_list_shows_how_each_alert_is_handled(client: TestClient, database_url: str, case: Case) -> None:
    raised = datetime.now(UTC) - timedelta(seconds=5)
    alert_id = new_alert(database_url, case, raised_at=raised)
    critical_ladder(database_url, alert_id, raised)
    post(client, alert_id, "assign", case.headers, {"care_manager_id": case.care_manager_id})

    [listed] = client.get(f"/api/v1/alerts?member_id={case.member_id}", headers=case.headers).json()

    assert listed["id"] == alert_id
    assert listed["assigned_to"] == case.care_manager_id
    assert listed["acknowledged_at"] is None and listed["outcome"] is None
    assert listed["next_step"] == {
        "step": 2, "to": "care_manager", "due_at": utc_text(raised + timedelta(seconds=60)),
    }


# --- the outreach log -------------------------------------------------------------------------------


def add_outreach(database_url: str, alert_id: str, step: int, **columns: object) -> int:
    row = {
        "purpose": "alert", "to_role": "member", "recipient_key": "member:m", "recipient_name": "Ada Lovelace",
        "channel": "mailto", "target": "mailto://ada:secret-password@example.org", "title": "Vigil: are you OK?",
        "body": "unusually-high-marker", "status": "pending", "reason": None, "attempts": 0, "grouped_into": None,
        "sent_at": None, **columns,
    }
    row["target_digest"] = f"digest-{uuid.uuid4().hex}"
    names = ", ".join(row)
    [(outreach_id,)] = sql(
        database_url,
        f"INSERT INTO outreach (alert_id, step, {names}) VALUES (%s, %s, {', '.join(['%s'] * len(row))}) RETURNING id",
        (alert_id, step, *row.values()),
    )
    return outreach_id


def test_the_outreach_log_shows_every_message_and_never_its_address_or_text(
    client: TestClient, database_url: str, case: Case
) -> None:
    alert_id = new_alert(database_url, case)
    other = new_alert(database_url, case, alert_type="tachycardia", severity="high")
    sent_at = datetime(2026, 11, 22, 10, 0, 1, tzinfo=UTC)
    carrier = add_outreach(database_url, other, 1, status="sent", attempts=2, sent_at=sent_at)
    add_outreach(database_url, alert_id, 1, status="sent", attempts=1, sent_at=sent_at)
    add_outreach(database_url, alert_id, 1, channel="none", target="", status="skipped",
                 reason="Ada Lovelace has no outreach channel")
    add_outreach(database_url, alert_id, 2, to_role="care_manager", recipient_key="care_manager:c",
                 recipient_name="Grace Hopper", channel="json", status="failed", attempts=8,
                 reason="HTTP 500 from the receiver")
    add_outreach(database_url, alert_id, 3, status="pending", grouped_into=carrier)
    add_outreach(database_url, alert_id, 4, purpose="tip", status="sending", attempts=1)

    response = client.get(f"/api/v1/alerts/{alert_id}/outreach", headers=case.headers)

    assert response.status_code == 200
    log = response.json()
    assert [(e["step"], e["to"], e["channel"], e["status"], e["attempts"]) for e in log] == [
        (1, "member", "mailto", "sent", 1),
        (1, "member", "none", "skipped", 0),
        (2, "care_manager", "json", "failed", 8),
        (3, "member", "mailto", "sent", 2),  # carried by the other alert's message
        (4, "member", "mailto", "pending", 1),
    ]
    assert log[0]["at"] == "2026-11-22T10:00:01Z"
    assert log[0]["recipient"] == "Ada Lovelace" and log[2]["recipient"] == "Grace Hopper"
    assert log[1]["reason"] == "Ada Lovelace has no outreach channel"
    assert log[3]["reason"] == "sent together with another alert's message (tachycardia)"
    assert log[3]["at"] == "2026-11-22T10:00:01Z"
    assert [e["purpose"] for e in log] == ["alert", "alert", "alert", "alert", "tip"]
    assert "secret-password" not in response.text and "unusually-high-marker" not in response.text
    assert set(log[0]) == {"step", "purpose", "to", "recipient", "channel", "status", "reason", "attempts", "at"}


def test_the_outreach_log_of_an_alert_without_messages_is_empty(
    client: TestClient, database_url: str, case: Case
) -> None:
    assert client.get(f"/api/v1/alerts/{new_alert(database_url, case)}/outreach", headers=ADMIN).json() == []


def test_the_outreach_log_is_refused_to_another_care_manager_and_404_for_an_unknown_alert(
    client: TestClient, database_url: str, case: Case
) -> None:
    stranger = bearer(database_url, create_care_manager(client)["id"])
    assert client.get(f"/api/v1/alerts/{new_alert(database_url, case)}/outreach", headers=stranger).status_code == 403
    assert client.get(f"/api/v1/alerts/{uuid.uuid4()}/outreach", headers=ADMIN).status_code == 404


def test_a_condition_that_clears_after_an_acknowledgement_still_resolves_the_alert(
    client: TestClient, database_url: str, case: Case
) -> None:
    from alerts.store import apply_alert_changes
    from vigil.events import AlertChanged

    alert_id = new_alert(database_url, case)
    assert client.post(f"/api/v1/alerts/{alert_id}/ack", headers=case.headers).status_code == 200
    cleared_at = datetime.now(UTC)
    event = AlertChanged(change="cleared", alert_id=alert_id, type="fall", severity="critical",
                         member_id=case.member_id, device_id=case.device_id, triggered_at_ms=0,
                         detected_at_ms=int(cleared_at.timestamp() * 1000),
                         cleared_at_ms=int(cleared_at.timestamp() * 1000), evidence={})

    async def clear() -> list[str]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await apply_alert_changes(conn, [event], datetime.now(UTC))

    assert asyncio.run(clear()) == ["cleared"]
    alert = client.get(f"/api/v1/alerts/{alert_id}", headers=case.headers).json()
    assert (alert["status"], alert["acknowledged_by"], alert["outcome"]) == (
        "resolved", f"care_manager:{case.care_manager_id}", None)
    assert [entry["action"] for entry in alert["history"]] == ["raised", "acknowledged", "condition_cleared"]


def test_deleting_an_alert_takes_its_ladder_outreach_tasks_and_reply_links_with_it(
    client: TestClient, database_url: str, case: Case
) -> None:
    from alerts.reply_tokens import issue_reply_token_sync
    from bench.ceilings import delete_devices_rows

    alert_id = new_alert(database_url, case)
    critical_ladder(database_url, alert_id, datetime.now(UTC))
    insert_task(database_url, case.member_id, alert_id=alert_id)
    sql(database_url, "INSERT INTO outreach (alert_id, step, to_role, recipient_key, channel, target_digest, status) "
        "VALUES (%s, 1, 'member', 'member:x', 'json', 'd', 'sent')", (alert_id,))
    with psycopg.connect(database_url) as conn:
        issue_reply_token_sync(conn, alert_id)

    deleted = delete_devices_rows(database_url, case.device_id)

    assert deleted["alerts"] == 1
    for table in ("alert_steps", "outreach", "tasks", "reply_tokens"):
        assert sql(database_url, f"SELECT count(*) FROM {table} WHERE alert_id = %s", (alert_id,)) == [(0,)], table
