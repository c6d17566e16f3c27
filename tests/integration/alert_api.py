"""What the tests of alert handling through the API share: the app on a database of the module's own,
registrations through the API, and alerts and ladder steps written straight into their tables (as the
alert consumer and the scheduler would)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from api.app import create_app
from vigil.settings import Settings
from vigil.tokens import issue_token

ADMIN_TOKEN = "alert-api-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class _Accounts:
    """The broker's side of device registration; tested against the real broker elsewhere."""

    def ensure_device(self, device_id: str, password: str) -> str:
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        return f"gw.{gateway_id}"


class _CarePlans:
    async def publish(self, event: object) -> None:
        return None


@contextmanager
def running_api(database_url: str, **settings: str) -> Iterator[TestClient]:
    app = create_app(
        Settings(_env_file=None, DATABASE_URL=database_url, VIGIL_ADMIN_TOKEN=ADMIN_TOKEN, **settings),
        _Accounts(),
        care_plans=_CarePlans(),
    )
    with TestClient(app) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bearer(database_url: str, care_manager_id: str) -> dict[str, str]:
    """Headers with a new token of that care manager."""
    return {"Authorization": f"Bearer {issue_token(database_url, 'care_manager', care_manager_id)}"}


def sql(database_url: str, query: str, params: Sequence[object] = ()) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@dataclass(frozen=True)
class Case:
    """A care manager, their member and the member's device, and headers with the care manager's token."""

    care_manager_id: str
    member_id: str
    device_id: str
    headers: dict[str, str]


def new_case(client: TestClient, database_url: str, *, member: dict | None = None,
             device: dict | None = None) -> Case:
    """A fresh `Case`; `member` and `device` override fields of their registrations."""
    care_manager = create_care_manager(client)
    registered = create_member(client, care_manager["id"], **(member or {}))
    device_id = create_device(client, registered["id"], **(device or {}))
    return Case(care_manager["id"], registered["id"], device_id, bearer(database_url, care_manager["id"]))


def create_care_manager(client: TestClient, **overrides: object) -> dict:
    body = {"id": unique("cm"), "name": "Grace Hopper", "email": "grace@example.org", "phone": "+1 555 0100",
            "timezone": "America/New_York", "outreach_urls": ["json://127.0.0.1:9/cm"], **overrides}
    response = client.post("/api/v1/care_managers", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def create_member(client: TestClient, care_manager_id: str | None, **overrides: object) -> dict:
    body = {
        "name": "Ada Lovelace",
        "timezone": "Europe/London",
        "phone": "+44 20 7946 0000",
        "policy": {"number": "POL-1", "line": "both"},
        "care_manager_id": care_manager_id,
        "emergency_contacts": [{"name": "Byron", "phone": "+44 20 7946 0001", "relation": "son"}],
        "consent": {"monitoring": True, "outreach": True, "auto_claims": False},
        **overrides,
    }
    response = client.post("/api/v1/members", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def create_device(client: TestClient, member_id: str, **overrides: object) -> str:
    body = {"device_id": unique("wb"), "kind": "wearable", "member_id": member_id, **overrides}
    response = client.post("/api/v1/devices", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return body["device_id"]


def insert_alert(
    database_url: str,
    member_id: str,
    device_id: str,
    *,
    alert_type: str = "fall",
    severity: str = "critical",
    status: str = "open",
    raised_at: datetime | None = None,
    evidence: dict | None = None,
) -> str:
    """An alert row as the alert consumer writes it on a raise (without its ladder: `insert_steps`)."""
    alert_id = str(uuid.uuid4())
    raised_at = raised_at or datetime.now(UTC) - timedelta(seconds=30)
    sql(
        database_url,
        "INSERT INTO alerts (id, type, severity, status, member_id, device_id, triggered_at, raised_at, updated_at, "
        "evidence, history) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (alert_id, alert_type, severity, status, member_id, device_id, raised_at - timedelta(seconds=5), raised_at,
         raised_at, Jsonb(evidence or {"fall": 1}), Jsonb([{"at": raised_at.isoformat(), "action": "raised"}])),
    )
    return alert_id


def insert_steps(database_url: str, alert_id: str, steps: Sequence[tuple[int, str, str, datetime]]) -> None:
    """Ladder steps `(step, recipient, state, due_at)`, as the alert store plans them and the scheduler runs them."""
    with psycopg.connect(database_url) as conn:
        conn.cursor().executemany(
            "INSERT INTO alert_steps (alert_id, step, recipient, state, due_at, done_at) "
            "VALUES (%s, %s, %s, %s, %s, CASE WHEN %s = 'done' THEN %s END)",
            [(alert_id, step, to, state, due, state, due) for step, to, state, due in steps],
        )


def steps_of(database_url: str, alert_id: str) -> list[tuple]:
    """`(step, recipient, kind, state, due_at)` in step order."""
    return sql(
        database_url,
        "SELECT step, recipient, kind, state, due_at FROM alert_steps WHERE alert_id = %s ORDER BY step",
        (alert_id,),
    )


def insert_task(
    database_url: str, member_id: str, *, alert_id: str | None = None, kind: str = "call", step: int = 1,
    due_at: datetime | None = None,
) -> int:
    """A task as the scheduler makes it."""
    [(task_id,)] = sql(
        database_url,
        "INSERT INTO tasks (kind, alert_id, step, member_id, due_at, reason) VALUES (%s, %s, %s, %s, %s, %s) "
        "RETURNING id",
        (kind, alert_id, step, member_id, due_at or datetime.now(UTC), f"{kind} about the alert"),
    )
    return task_id
