"""The v1 HTTP API and the alert store against a real PostgreSQL (a fresh database per run).

The MQTT broker is replaced by a recording double: its provisioning is tested against the real
broker in the broker-accounts tests, and here only the API's use of it (and its failure) matters.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from alerts.app import create_app
from alerts.store import apply_alert_changes, get_alert
from alerts.tokens import issue_token, token_digest
from vigil.events import AlertChanged, alert_id
from vigil.settings import Settings
from vigil.storage.schema import ensure_database, migrate
from vigil.telemetry import to_ms

pytestmark = pytest.mark.infra

# The server the rest of the suite uses (tests/conftest.py), with a database of this module's own.
DATABASE_URL = urlunparse(
    urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil"))._replace(
        path="/vigil_api_test"
    )
)
UNREACHABLE_DATABASE_URL = "postgresql://postgres@127.0.0.1:1/vigil_api_test"
ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class RecordingCarePlans:
    """Records care-plan publications; the real Kafka publisher is tested in test_care_plans.py."""

    def __init__(self) -> None:
        self.events: list = []

    async def publish(self, event) -> None:
        self.events.append(event)


class RecordingAccounts:
    """Records provisioning calls; `failing` makes the broker refuse, as a down broker would."""

    def __init__(self) -> None:
        self.devices: list[tuple[str, str]] = []
        self.gateways: list[tuple[str, list[str], str]] = []
        self.failing = False

    def ensure_device(self, device_id: str, password: str) -> str:
        if self.failing:
            raise ConnectionError("broker down")
        self.devices.append((device_id, password))
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        if self.failing:
            raise ConnectionError("broker down")
        self.gateways.append((gateway_id, list(device_ids), password))
        return f"gw.{gateway_id}"


@dataclass
class Switch:
    """A health probe whose answer the test sets."""

    up: bool = True
    error: Exception | None = None

    async def __call__(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.up


@dataclass
class Api:
    client: TestClient
    accounts: RecordingAccounts
    probes: dict[str, Switch] = field(default_factory=dict)


@pytest.fixture(scope="module")
def database_url() -> str:
    with psycopg.connect(make_conninfo(DATABASE_URL, dbname="postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS vigil_api_test WITH (FORCE)")
    ensure_database(DATABASE_URL)
    migrate(DATABASE_URL, retention_days=30)
    return DATABASE_URL


def _settings(database_url: str) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=database_url, VIGIL_ADMIN_TOKEN=ADMIN_TOKEN)


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[Api]:
    accounts = RecordingAccounts()
    probes = {"kafka": Switch(), "mqtt": Switch()}
    app = create_app(_settings(database_url), accounts, health_probes=probes, care_plans=RecordingCarePlans())
    with TestClient(app) as client:
        yield Api(client, accounts, probes)


def sql(database_url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def member_body(**overrides: object) -> dict:
    body = {
        "name": "Ada Lovelace",
        "birth_date": "1941-12-10",
        "phone": "+44 20 7946 0000",
        "email": "ada@example.org",
        "address": "12 St James's Square, London",
        "timezone": "Europe/London",
        "policy": {"number": "POL-1", "line": "both"},
        "care_manager_id": "cm-1",
        "emergency_contacts": [{"name": "Byron", "phone": "+44 20 7946 0001", "relation": "son"}],
        "consent": {"monitoring": True, "outreach": True, "auto_claims": False},
        "care_plan": {"tachycardia": {"tiers.0.threshold": 130}},
        "outreach_urls": ["mailto://ada@example.org"],
    }
    body.update(overrides)
    return body


def create_member(api: Api, **overrides: object) -> dict:
    response = api.client.post("/api/v1/members", json=member_body(**overrides), headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def create_device(api: Api, member_id: str, **overrides: object) -> dict:
    body = {"device_id": unique("wb"), "kind": "wearable", "member_id": member_id, **overrides}
    response = api.client.post("/api/v1/devices", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def care_manager_headers(database_url: str, care_manager_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(database_url, 'care_manager', care_manager_id)}"}


def fields(response) -> list[str]:
    return [d["field"] for d in response.json()["detail"]]


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_requests_without_a_valid_token_are_refused(api: Api, headers: dict) -> None:
    response = api.client.get("/api/v1/alerts", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


def test_the_admin_token_from_the_environment_is_accepted(api: Api) -> None:
    assert api.client.get("/api/v1/alerts", headers=ADMIN).status_code == 200


def test_an_issued_token_works_and_only_its_digest_is_stored(api: Api, database_url: str) -> None:
    token = issue_token(database_url, "admin")
    assert token.startswith("vgl_")
    assert api.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    stored = [r[0] for r in sql(database_url, "SELECT token_sha256 FROM api_tokens")]
    assert token_digest(token) in stored
    assert token not in stored


def test_a_revoked_token_is_refused(api: Api, database_url: str) -> None:
    token = issue_token(database_url, "admin")
    sql(
        database_url,
        "UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = %s",
        (token_digest(token),),
    )
    assert api.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_care_manager_token_naming_no_care_manager_is_refused(api: Api, database_url: str) -> None:
    token = "vgl_handmade"
    sql(
        database_url,
        "INSERT INTO api_tokens (token_sha256, role) VALUES (%s, 'care_manager')",
        (token_digest(token),),
    )
    assert api.client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize(
    ("role", "care_manager_id"), [("auditor", None), ("care_manager", None), ("admin", "cm-1")]
)
def test_issue_token_refuses_roles_it_could_not_enforce(
    database_url: str, role: str, care_manager_id
) -> None:
    with pytest.raises(ValueError):
        issue_token(database_url, role, care_manager_id)


# --- members ----------------------------------------------------------------------------------------


def test_a_member_is_created_and_read_back(api: Api) -> None:
    created = create_member(api)
    assert created["id"].startswith("mbr_")
    assert created["policy"] == {"number": "POL-1", "line": "both"}
    assert created["care_plan"] == {"tachycardia": {"tiers.0.threshold": 130}}
    assert created["created_at"].endswith("Z")
    read = api.client.get(f"/api/v1/members/{created['id']}", headers=ADMIN)
    assert read.status_code == 200
    assert read.json() == created


def test_a_member_id_chosen_by_the_client_is_kept_and_cannot_be_reused(api: Api) -> None:
    member_id = unique("m")
    assert create_member(api, id=member_id)["id"] == member_id
    again = api.client.post("/api/v1/members", json=member_body(id=member_id), headers=ADMIN)
    assert again.status_code == 409


def test_an_unknown_member_is_404(api: Api) -> None:
    response = api.client.get("/api/v1/members/nobody", headers=ADMIN)
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"policy": {"number": "P", "line": "car"}}, "policy.line"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"consent": {"monitoring": True, "outreach": "yes", "auto_claims": False}}, "consent.outreach"),
        ({"consent": None}, "consent"),
        (
            {"emergency_contacts": [{"name": "X", "phone": "call me", "relation": "son"}]},
            "emergency_contacts.0.phone",
        ),
        ({"care_plan": ["not", "an", "object"]}, "care_plan"),
        ({"outreach_urls": ["not a url"]}, "outreach_urls.0"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"consents": {}}, "consents"),
        ({"id": "has/slash"}, "id"),
    ],
)
def test_an_invalid_member_is_refused_naming_the_field(api: Api, overrides: dict, field_name: str) -> None:
    response = api.client.post("/api/v1/members", json=member_body(**overrides), headers=ADMIN)
    assert response.status_code == 422
    assert field_name in fields(response)
    assert all(d["message"] for d in response.json()["detail"])


def test_a_missing_field_is_named(api: Api) -> None:
    body = member_body()
    del body["name"]
    response = api.client.post("/api/v1/members", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert fields(response) == ["name"]


def test_a_body_that_is_not_json_is_named_body(api: Api) -> None:
    response = api.client.post(
        "/api/v1/members", content=b"{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert fields(response) == ["body"]


def test_a_care_manager_may_not_register_anything(api: Api, database_url: str) -> None:
    headers = care_manager_headers(database_url, "cm-1")
    member = create_member(api)
    for path, body in [
        ("/api/v1/members", member_body()),
        ("/api/v1/devices", {"device_id": unique("d"), "kind": "home", "member_id": member["id"]}),
        ("/api/v1/gateways", {"id": unique("g"), "device_ids": []}),
    ]:
        assert api.client.post(path, json=body, headers=headers).status_code == 403


def test_a_care_manager_sees_only_their_own_members(api: Api, database_url: str) -> None:
    mine = create_member(api, care_manager_id="cm-a")
    theirs = create_member(api, care_manager_id="cm-b")
    unassigned = create_member(api, care_manager_id=None)
    headers = care_manager_headers(database_url, "cm-a")
    assert api.client.get(f"/api/v1/members/{mine['id']}", headers=headers).status_code == 200
    assert api.client.get(f"/api/v1/members/{theirs['id']}", headers=headers).status_code == 403
    assert api.client.get(f"/api/v1/members/{unassigned['id']}", headers=headers).status_code == 403


# --- devices and gateways ---------------------------------------------------------------------------


def test_a_registered_device_gets_mqtt_credentials(api: Api, database_url: str) -> None:
    member = create_member(api)
    device = create_device(api, member["id"], kind="home", location="kitchen")
    assert device["mqtt_username"] == device["device_id"]
    assert len(device["mqtt_password"]) >= 24
    assert device["report_interval_s"] == 300
    assert device["location"] == "kitchen"
    assert (device["device_id"], device["mqtt_password"]) in api.accounts.devices
    rows = sql(
        database_url, "SELECT member_id, kind FROM devices WHERE device_id = %s", (device["device_id"],)
    )
    assert rows == [(member["id"], "home")]


def test_a_device_id_that_exists_is_409(api: Api) -> None:
    member = create_member(api)
    device = create_device(api, member["id"])
    again = api.client.post(
        "/api/v1/devices",
        headers=ADMIN,
        json={"device_id": device["device_id"], "kind": "wearable", "member_id": member["id"]},
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"member_id": "no-such-member"}, "member_id"),
        ({"device_id": "bad/id"}, "device_id"),
        ({"device_id": "x" * 65}, "device_id"),
        ({"kind": "car"}, "kind"),
        ({"report_interval_s": 0}, "report_interval_s"),
        ({"device_id": "vigil-ingest"}, "device_id"),  # would take over the ingest service's broker login
    ],
)
def test_an_invalid_device_is_refused_naming_the_field(api: Api, body: dict, field_name: str) -> None:
    member = create_member(api)
    full = {"device_id": unique("d"), "kind": "wearable", "member_id": member["id"], **body}
    response = api.client.post("/api/v1/devices", json=full, headers=ADMIN)
    assert response.status_code == 422
    assert fields(response) == [field_name]


def test_a_device_is_not_registered_when_the_broker_fails(api: Api, database_url: str) -> None:
    member = create_member(api)
    device_id = unique("d")
    body = {"device_id": device_id, "kind": "wearable", "member_id": member["id"]}
    api.accounts.failing = True
    try:
        response = api.client.post("/api/v1/devices", json=body, headers=ADMIN)
    finally:
        api.accounts.failing = False
    assert response.status_code == 503
    assert "MQTT broker" in response.json()["detail"]
    assert sql(database_url, "SELECT 1 FROM devices WHERE device_id = %s", (device_id,)) == []
    assert api.client.post("/api/v1/devices", json=body, headers=ADMIN).status_code == 201


def test_a_gateway_is_registered_for_its_devices(api: Api, database_url: str) -> None:
    member = create_member(api)
    devices = [create_device(api, member["id"])["device_id"] for _ in range(2)]
    gateway_id = unique("hub")
    response = api.client.post(
        "/api/v1/gateways", headers=ADMIN, json={"id": gateway_id, "name": "Home hub", "device_ids": devices}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["mqtt_username"] == f"gw.{gateway_id}"
    assert body["device_ids"] == devices
    assert (gateway_id, devices, body["mqtt_password"]) in api.accounts.gateways
    assert sql(database_url, "SELECT mqtt_username FROM gateways WHERE id = %s", (gateway_id,)) == [
        (f"gw.{gateway_id}",)
    ]
    bound = sql(
        database_url, "SELECT device_id FROM gateway_devices WHERE gateway_id = %s ORDER BY 1", (gateway_id,)
    )
    assert [r[0] for r in bound] == sorted(devices)
    again = api.client.post("/api/v1/gateways", headers=ADMIN, json={"id": gateway_id, "device_ids": devices})
    assert again.status_code == 409


def test_a_gateway_for_unknown_devices_is_refused(api: Api) -> None:
    response = api.client.post(
        "/api/v1/gateways", headers=ADMIN, json={"id": unique("hub"), "device_ids": ["ghost-1"]}
    )
    assert response.status_code == 422
    assert fields(response) == ["device_ids"]
    assert "ghost-1" in response.json()["detail"][0]["message"]


def test_a_gateway_is_not_registered_when_the_broker_fails(api: Api, database_url: str) -> None:
    gateway_id = unique("hub")
    api.accounts.failing = True
    try:
        response = api.client.post(
            "/api/v1/gateways", headers=ADMIN, json={"id": gateway_id, "device_ids": []}
        )
    finally:
        api.accounts.failing = False
    assert response.status_code == 503
    assert sql(database_url, "SELECT 1 FROM gateways WHERE id = %s", (gateway_id,)) == []


# --- readings ---------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def reading_device(api: Api, database_url: str) -> dict:
    member = create_member(api, care_manager_id="cm-readings")
    device = create_device(api, member["id"])
    rows = [
        (device["device_id"], T0 + timedelta(minutes=i), metric, value, i)
        for i in range(5)
        for metric, value in (("heart_rate", 70 + i), ("spo2", 97))
    ]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, ts, metric, value, seq) VALUES (%s, %s, %s, %s, %s)", rows
        )
    return device


def readings(api: Api, device_id: str, headers: dict = ADMIN, **params: object):
    return api.client.get(f"/api/v1/devices/{device_id}/readings", params=params, headers=headers)


def test_readings_come_newest_first(api: Api, reading_device: dict) -> None:
    response = readings(api, reading_device["device_id"], metric="heart_rate")
    assert response.status_code == 200
    body = response.json()
    assert [r["value"] for r in body] == [74, 73, 72, 71, 70]
    assert body[0] == {"ts": "2026-11-22T10:04:00Z", "metric": "heart_rate", "value": 74.0, "seq": 4}


def test_readings_filter_by_time_and_limit(api: Api, reading_device: dict) -> None:
    response = readings(
        api,
        reading_device["device_id"],
        metric="heart_rate",
        since="2026-11-22T10:01:00Z",
        until="2026-11-22T11:03:00+01:00",
    )
    assert [r["seq"] for r in response.json()] == [2, 1]
    assert len(readings(api, reading_device["device_id"], limit=3).json()) == 3
    assert len(readings(api, reading_device["device_id"]).json()) == 10


@pytest.mark.parametrize(
    ("params", "field_name"),
    [
        ({"metric": "mood"}, "metric"),
        ({"since": "2026-11-22T10:00:00"}, "since"),
        ({"until": "yesterday"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
    ],
)
def test_bad_reading_filters_are_named(api: Api, reading_device: dict, params: dict, field_name: str) -> None:
    response = readings(api, reading_device["device_id"], **params)
    assert response.status_code == 422
    assert fields(response) == [field_name]


def test_readings_of_an_unknown_device_are_404(api: Api) -> None:
    assert readings(api, "ghost").status_code == 404


def test_readings_follow_member_assignment(api: Api, database_url: str, reading_device: dict) -> None:
    device_id = reading_device["device_id"]
    assert readings(api, device_id, care_manager_headers(database_url, "cm-readings")).status_code == 200
    assert readings(api, device_id, care_manager_headers(database_url, "cm-other")).status_code == 403


# --- alerts over the API ----------------------------------------------------------------------------


def insert_alert(
    database_url: str, *, member_id: str, device_id: str, alert_type: str, status: str, raised_at: datetime
) -> str:
    new_id = str(uuid.uuid4())
    sql(
        database_url,
        "INSERT INTO alerts (id, type, severity, status, member_id, device_id, triggered_at, raised_at, "
        "evidence, history) VALUES (%s, %s, 'high', %s, %s, %s, %s, %s, %s, %s)",
        (
            new_id,
            alert_type,
            status,
            member_id,
            device_id,
            raised_at - timedelta(seconds=30),
            raised_at,
            Jsonb({"metric": "heart_rate", "threshold_bpm": 120, "readings": [[1, 130]]}),
            Jsonb([{"at": raised_at.isoformat(), "action": "raised"}]),
        ),
    )
    return new_id


@pytest.fixture(scope="module")
def alert_rows(api: Api, database_url: str) -> dict:
    mine = create_member(api, care_manager_id="cm-alerts")
    theirs = create_member(api, care_manager_id="cm-else")
    ids = {
        "old": insert_alert(
            database_url,
            member_id=mine["id"],
            device_id="dev-a",
            alert_type="tachycardia",
            status="resolved",
            raised_at=T0,
        ),
        "mid": insert_alert(
            database_url,
            member_id=mine["id"],
            device_id="dev-b",
            alert_type="water_leak",
            status="open",
            raised_at=T0 + timedelta(hours=1),
        ),
        "new": insert_alert(
            database_url,
            member_id=theirs["id"],
            device_id="dev-c",
            alert_type="tachycardia",
            status="acknowledged",
            raised_at=T0 + timedelta(hours=2),
        ),
    }
    return {"mine": mine["id"], "theirs": theirs["id"], **ids}


def alerts(api: Api, headers: dict = ADMIN, **params: object) -> list[str]:
    response = api.client.get("/api/v1/alerts", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()]


def test_alerts_are_listed_newest_first_and_filtered(api: Api, alert_rows: dict) -> None:
    ours = {alert_rows[k] for k in ("old", "mid", "new")}  # other tests store alerts in this database too

    def listed(**params: object) -> list[str]:
        return [a for a in alerts(api, **params) if a in ours]

    assert listed(member_id=alert_rows["mine"]) == [alert_rows["mid"], alert_rows["old"]]
    assert listed(device_id="dev-c") == [alert_rows["new"]]
    assert listed(status="open", member_id=alert_rows["mine"]) == [alert_rows["mid"]]
    assert listed(type="tachycardia") == [alert_rows["new"], alert_rows["old"]]
    assert listed(since="2026-11-22T10:30:00Z") == [alert_rows["new"], alert_rows["mid"]]
    assert alerts(api, member_id=alert_rows["mine"], limit=1) == [alert_rows["mid"]]


def test_an_alert_is_read_with_its_evidence_and_history(api: Api, alert_rows: dict) -> None:
    response = api.client.get(f"/api/v1/alerts/{alert_rows['mid']}", headers=ADMIN)
    assert response.status_code == 200
    alert = response.json()
    assert alert["type"] == "water_leak"
    assert alert["status"] == "open"
    assert alert["raised_at"] == "2026-11-22T11:00:00Z"
    assert alert["triggered_at"] == "2026-11-22T10:59:30Z"
    assert alert["evidence"]["threshold_bpm"] == 120
    assert alert["history"][0]["action"] == "raised"
    assert alert["resolved_at"] is None


@pytest.mark.parametrize("alert_ref", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_alert_is_404(api: Api, alert_ref: str) -> None:
    assert api.client.get(f"/api/v1/alerts/{alert_ref}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(
    ("params", "field_name"), [({"status": "closed"}, "status"), ({"type": "hiccups"}, "type")]
)
def test_bad_alert_filters_are_named(api: Api, params: dict, field_name: str) -> None:
    response = api.client.get("/api/v1/alerts", params=params, headers=ADMIN)
    assert response.status_code == 422
    assert fields(response) == [field_name]


def test_a_care_manager_sees_only_their_members_alerts(api: Api, database_url: str, alert_rows: dict) -> None:
    headers = care_manager_headers(database_url, "cm-alerts")
    assert alerts(api, headers) == [alert_rows["mid"], alert_rows["old"]]
    assert (
        api.client.get(
            "/api/v1/alerts", params={"member_id": alert_rows["theirs"]}, headers=headers
        ).status_code
        == 403
    )
    assert api.client.get(f"/api/v1/alerts/{alert_rows['new']}", headers=headers).status_code == 403
    assert api.client.get(f"/api/v1/alerts/{alert_rows['old']}", headers=headers).status_code == 200


# --- operations -------------------------------------------------------------------------------------


def test_health_is_200_when_everything_is_up(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "up", "components": {"database": "up", "kafka": "up", "mqtt": "up"}}


@pytest.mark.parametrize("switch", [Switch(up=False), Switch(error=ConnectionRefusedError("no broker"))])
def test_health_is_503_when_a_component_is_down(api: Api, switch: Switch) -> None:
    original = api.probes["mqtt"]
    api.probes["mqtt"].up, api.probes["mqtt"].error = switch.up, switch.error
    try:
        response = api.client.get("/health")
    finally:
        original.up, original.error = True, None
    assert response.status_code == 503
    assert response.json() == {
        "status": "down",
        "components": {"database": "up", "kafka": "up", "mqtt": "down"},
    }


def test_health_reports_a_database_that_is_down() -> None:
    settings = _settings(UNREACHABLE_DATABASE_URL)
    with TestClient(create_app(settings, RecordingAccounts(), care_plans=RecordingCarePlans())) as client:
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["components"] == {"database": "down"}
        # And a request that needs the database answers 503, not a traceback.
        assert client.get("/api/v1/alerts", headers=ADMIN).status_code == 503


def test_metrics_are_exposed(api: Api) -> None:
    import alerts.consumer  # noqa: F401 - registers the consumer's metrics, as the real service does

    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert "vigil_alert_events_malformed_total" in response.text


def test_an_unexpected_error_answers_500_json_without_a_traceback(database_url: str) -> None:
    app = create_app(_settings(database_url), RecordingAccounts(), care_plans=RecordingCarePlans())

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; it has been logged"}
    assert "secret" not in response.text


# --- the alert store: how alert events become rows --------------------------------------------------


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        yield connection


def event(change: str, device_id: str, triggered: datetime, **overrides: object) -> AlertChanged:
    triggered_ms = to_ms(triggered)
    fields_ = {
        "change": change,
        "alert_id": alert_id(device_id, "tachycardia", triggered_ms),
        "type": "tachycardia",
        "severity": "high",
        "member_id": "m-store",
        "device_id": device_id,
        "triggered_at_ms": triggered_ms,
        "detected_at_ms": triggered_ms + 1000,
        "evidence": {"max_bpm": 140},
    }
    return AlertChanged(**(fields_ | overrides))


async def rows_for(conn: psycopg.AsyncConnection, device_id: str) -> list[tuple]:
    cur = await conn.execute(
        "SELECT id::text, status, evidence, history FROM alerts WHERE device_id = %s ORDER BY raised_at",
        (device_id,),
    )
    return await cur.fetchall()


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def test_a_redelivered_raise_leaves_one_alert(conn: psycopg.AsyncConnection) -> None:
    device = unique("store")
    raised = event("raised", device, T0)
    assert await apply_alert_changes(conn, [raised, raised], NOW) == ["raised", "duplicate"]
    assert await apply_alert_changes(conn, [raised], NOW + timedelta(minutes=1)) == ["duplicate"]
    [(row_id, status, evidence, history)] = await rows_for(conn, device)
    assert (row_id, status, evidence) == (raised.alert_id, "open", {"max_bpm": 140})
    assert history == [{"at": "2026-11-22T12:00:00Z", "action": "raised"}]
    stored = await get_alert(conn, raised.alert_id)
    assert stored["raised_at"] == NOW
    assert stored["triggered_at"] == T0


async def test_a_second_episode_while_one_is_open_updates_the_open_alert(
    conn: psycopg.AsyncConnection,
) -> None:
    device = unique("store")
    first = event("raised", device, T0)
    second = event("raised", device, T0 + timedelta(minutes=10), evidence={"max_bpm": 150})
    outcomes = await apply_alert_changes(conn, [first, second, second], NOW)
    assert outcomes == ["raised", "retriggered", "duplicate"]
    [(row_id, status, evidence, history)] = await rows_for(conn, device)
    assert (row_id, status, evidence) == (first.alert_id, "open", {"max_bpm": 150})
    assert [h["action"] for h in history] == ["raised", "retriggered"]
    assert history[1]["episode"] == second.alert_id

    # The absorbed episode's later events land in the open alert too.
    update = event("updated", device, T0 + timedelta(minutes=10), evidence={"max_bpm": 160})
    assert await apply_alert_changes(conn, [update], NOW) == ["updated"]
    [(_, _, evidence, _)] = await rows_for(conn, device)
    assert evidence == {"max_bpm": 160}


async def test_an_update_moves_triggered_at_back_to_when_the_condition_was_met(
    conn: psycopg.AsyncConnection,
) -> None:
    # The stream raised at 10:05:30 on the newest readings; stragglers then showed the condition was met
    # at 10:04:00. The updates name the same alert (its id derived from the first verdict) with the
    # corrected moment; a later moment never moves it forward again.
    device = unique("store")
    raised = event("raised", device, T0 + timedelta(minutes=5, seconds=30))
    same = {"alert_id": raised.alert_id}
    closer = event("updated", device, T0 + timedelta(minutes=5), **same)
    met = event("updated", device, T0 + timedelta(minutes=4), **same, evidence={"max_bpm": 150})
    later = event("updated", device, T0 + timedelta(minutes=6), **same, evidence={"max_bpm": 155})
    outcomes = await apply_alert_changes(conn, [raised, closer, met, met, later], NOW)

    assert outcomes == ["raised", "updated", "updated", "updated", "updated"]
    stored = await get_alert(conn, raised.alert_id)
    assert (stored["id"], stored["status"], stored["evidence"]) == (raised.alert_id, "open", {"max_bpm": 155})
    assert stored["triggered_at"] == T0 + timedelta(minutes=4)
    assert stored["history"] == [
        {"at": "2026-11-22T12:00:00Z", "action": "raised"},
        {"at": "2026-11-22T12:00:00Z", "action": "triggered_at_corrected",
         "old": "2026-11-22T10:05:30Z", "new": "2026-11-22T10:05:00Z"},
        {"at": "2026-11-22T12:00:00Z", "action": "triggered_at_corrected",
         "old": "2026-11-22T10:05:00Z", "new": "2026-11-22T10:04:00Z"},
    ]
    assert len(await rows_for(conn, device)) == 1

    # A severity change and a correction in one update record both; a resolved alert is left alone.
    both = event("updated", device, T0 + timedelta(minutes=3), **same, severity="critical")
    cleared = event("cleared", device, T0, **same, cleared_at_ms=to_ms(T0 + timedelta(minutes=20)))
    too_late = event("updated", device, T0 + timedelta(minutes=1), **same)
    assert await apply_alert_changes(conn, [both, cleared, too_late], NOW) == ["updated", "cleared", "ignored"]
    stored = await get_alert(conn, raised.alert_id)
    assert (stored["severity"], stored["triggered_at"]) == ("critical", T0 + timedelta(minutes=3))
    assert [h["action"] for h in stored["history"][3:]] == [
        "severity_changed", "triggered_at_corrected", "condition_cleared"]


async def test_an_acknowledged_alert_still_absorbs_a_new_episode(conn: psycopg.AsyncConnection) -> None:
    device = unique("store")
    first = event("raised", device, T0)
    await apply_alert_changes(conn, [first], NOW)
    await conn.execute("UPDATE alerts SET status = 'acknowledged' WHERE id = %s", (first.alert_id,))
    await conn.commit()
    second = event("raised", device, T0 + timedelta(minutes=5))
    assert await apply_alert_changes(conn, [second], NOW) == ["retriggered"]
    assert [r[1] for r in await rows_for(conn, device)] == ["acknowledged"]


async def test_clearing_resolves_and_a_later_raise_opens_a_new_alert(conn: psycopg.AsyncConnection) -> None:
    device = unique("store")
    raised = event("raised", device, T0)
    cleared_ms = to_ms(T0 + timedelta(minutes=3))
    cleared = event("cleared", device, T0, cleared_at_ms=cleared_ms)
    assert await apply_alert_changes(conn, [raised, cleared, cleared], NOW) == [
        "raised",
        "cleared",
        "ignored",
    ]
    stored = await get_alert(conn, raised.alert_id)
    assert stored["status"] == "resolved"
    assert stored["cleared_at"] == T0 + timedelta(minutes=3)
    assert stored["resolved_at"] == NOW
    assert stored["history"][-1] == {
        "at": "2026-11-22T12:00:00Z",
        "action": "condition_cleared",
        "cleared_at": "2026-11-22T10:03:00Z",
    }
    # A late update of the resolved episode changes nothing; a redelivered raise neither.
    assert await apply_alert_changes(conn, [event("updated", device, T0), raised], NOW) == [
        "ignored",
        "duplicate",
    ]

    again = event("raised", device, T0 + timedelta(hours=1))
    assert await apply_alert_changes(conn, [again], NOW) == ["raised"]
    assert [(r[0], r[1]) for r in await rows_for(conn, device)] == [
        (raised.alert_id, "resolved"),
        (again.alert_id, "open"),
    ]


async def test_clearing_an_absorbed_episode_resolves_the_open_alert(conn: psycopg.AsyncConnection) -> None:
    device = unique("store")
    first = event("raised", device, T0)
    second = event("raised", device, T0 + timedelta(minutes=10))
    cleared = event("cleared", device, T0 + timedelta(minutes=10))
    assert await apply_alert_changes(conn, [first, second, cleared], NOW) == [
        "raised",
        "retriggered",
        "cleared",
    ]
    [(row_id, status, _, history)] = await rows_for(conn, device)
    assert (row_id, status) == (first.alert_id, "resolved")
    assert history[-1]["cleared_at"] == "2026-11-22T10:10:01Z"  # detected_at when cleared_at_ms is absent


async def test_replaying_a_whole_absorbed_episode_changes_nothing(conn: psycopg.AsyncConnection) -> None:
    device = unique("store")
    first = event("raised", device, T0)
    second = event("raised", device, T0 + timedelta(minutes=10))
    cleared = event("cleared", device, T0 + timedelta(minutes=10))
    await apply_alert_changes(conn, [first, second, cleared], NOW)
    before = await rows_for(conn, device)
    replayed = await apply_alert_changes(conn, [first, second, cleared], NOW + timedelta(hours=1))
    assert replayed == ["duplicate", "duplicate", "ignored"]
    assert await rows_for(conn, device) == before


async def test_a_batch_is_one_transaction(conn: psycopg.AsyncConnection) -> None:
    device = unique("store")
    good = event("raised", device, T0)
    bad = event("raised", device, T0 + timedelta(minutes=1), member_id="\x00")  # PostgreSQL refuses NUL
    with pytest.raises(psycopg.Error):
        await apply_alert_changes(conn, [good, bad], NOW)
    assert await rows_for(conn, device) == []
