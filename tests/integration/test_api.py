"""The v1 HTTP API and the alert store against a real PostgreSQL (a fresh database per run).

The MQTT broker is replaced by a recording double: its provisioning is tested against the real
broker in the broker-accounts tests, and here only the API's use of it (and its failure) matters.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from alerts.queries import get_alert
from alerts.store import apply_alert_changes
from api.app import MAX_BODY_BYTES, create_app
from api.deps import Pool
from api.errors import ErrorMessage, FieldErrors
from tests.integration.databases import recreate
from vigil.events import AlertChanged, alert_id
from vigil.settings import Settings
from vigil.storage.schema import migrate
from vigil.telemetry import to_ms
from vigil.tokens import issue, issue_token, revoke, token_digest

pytestmark = pytest.mark.infra

# The server the rest of the suite uses (tests/conftest.py), with a database of this module's own, named
# after the suite's so that checkouts testing side by side do not share it.
_SUITE_URL = urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil"))
DATABASE_NAME = f"{_SUITE_URL.path.lstrip('/')}_api"
DATABASE_URL = urlunparse(_SUITE_URL._replace(path=f"/{DATABASE_NAME}"))
UNREACHABLE_DATABASE_URL = f"postgresql://postgres@127.0.0.1:1/{DATABASE_NAME}"
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
    recreate(DATABASE_URL)
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


@pytest.mark.parametrize("by", ["token", "id"])
def test_a_revoked_token_is_refused_from_its_next_request_on(api: Api, database_url: str, by: str) -> None:
    issued = issue(database_url, "care_manager", "cm-revoked", lifetime=timedelta(days=30))
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert api.client.get("/api/v1/alerts", headers=headers).status_code == 200

    revoked = revoke(database_url, issued.token if by == "token" else issued.id)

    assert revoked is not None and revoked[0] == issued.id
    response = api.client.get("/api/v1/alerts", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "the API token has been revoked"}
    # Revoking again keeps the first moment; an unknown id revokes nothing.
    assert revoke(database_url, issued.id) == revoked
    assert revoke(database_url, "tok_unknown") is None


def test_an_expired_token_is_refused(api: Api, database_url: str) -> None:
    issued = issue(database_url, "admin", lifetime=timedelta(minutes=5))
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert issued.expires_at is not None
    assert api.client.get("/api/v1/alerts", headers=headers).status_code == 200

    # Five minutes on: the expiry is the database's, moved back rather than waited for.
    sql(database_url, "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", (issued.id,))

    response = api.client.get("/api/v1/alerts", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "the API token has expired; ask for a new one"}


def test_a_token_issued_without_a_lifetime_never_expires(database_url: str) -> None:
    issued = issue(database_url, "admin")
    assert issued.id.startswith("tok_")
    assert issued.expires_at is None
    assert sql(database_url, "SELECT expires_at FROM api_tokens WHERE id = %s", (issued.id,)) == [(None,)]


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
        ({"since": "1700000000"}, "since"),  # a unix time: RFC 3339 only
        ({"until": "1700000000.5"}, "until"),
        ({"since": "2026-11-22"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"metrics": "spo2"}, "metrics"),  # misspelt: refused, not ignored into "every metric"
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


def test_an_unknown_alert_is_404(api: Api) -> None:
    assert api.client.get(f"/api/v1/alerts/{uuid.uuid4()}", headers=ADMIN).status_code == 404


@pytest.mark.parametrize("form", ["urn:uuid:{}", "{{{}}}", "{}x", "not-a-uuid", "{}%00"])
def test_an_alert_id_not_of_the_form_the_api_issues_is_named(api: Api, alert_rows: dict, form: str) -> None:
    # uuid.UUID() and PostgreSQL accept `urn:uuid:` and braces; the API issues neither, and says so.
    response = api.client.get(f"/api/v1/alerts/{form.format(alert_rows['mid'])}", headers=ADMIN)
    assert response.status_code == 422
    assert fields(response) == ["alert_id"]


def test_an_alert_id_in_capitals_is_the_same_alert(api: Api, alert_rows: dict) -> None:
    response = api.client.get(f"/api/v1/alerts/{alert_rows['mid'].upper()}", headers=ADMIN)
    assert response.status_code == 200
    assert response.json()["id"] == alert_rows["mid"]


@pytest.mark.parametrize(
    ("params", "field_name"),
    [
        ({"status": "closed"}, "status"),
        ({"type": "hiccups"}, "type"),
        ({"stauts": "open"}, "stauts"),  # misspelt: refused, not ignored into "every alert"
        ({"member_id": "has/slash"}, "member_id"),
    ],
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


# --- malformed input: a 422 naming the field, never a 500 ------------------------------------------

NUL = "\x00"
MEMBER = {
    "name": "Ada",
    "policy": {"number": "POL-1", "line": "home"},
    "consent": {"monitoring": True, "outreach": False, "auto_claims": False},
}


def post_raw_json(api: Api, path: str, body: dict):
    """`body` as any JSON encoder may write it: `\\u0000`, `\\ud800` and `NaN` escaped, which httpx's own refuses."""
    return api.client.post(path, content=json.dumps(body), headers={**ADMIN, "Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("method", "path", "field_name"),
    [
        ("get", "/api/v1/members/m%00", "member_id"),
        ("get", "/api/v1/members/m%00/care_plan", "member_id"),
        ("put", "/api/v1/members/m%00/care_plan", "member_id"),
        ("get", "/api/v1/devices/d%00/readings", "device_id"),
        ("get", "/api/v1/alerts/%00", "alert_id"),
    ],
)
def test_nul_in_a_path_id_is_named(api: Api, method: str, path: str, field_name: str) -> None:
    response = api.client.request(method, path, headers=ADMIN, json={"overrides": {}} if method == "put" else None)
    assert response.status_code == 422, response.text
    assert fields(response) == [field_name]


@pytest.mark.parametrize(
    ("path", "params", "field_name"),
    [
        ("/api/v1/alerts", {"member_id": f"m{NUL}"}, "member_id"),
        ("/api/v1/alerts", {"device_id": NUL}, "device_id"),
        ("/api/v1/alerts", {"status": f"open{NUL}"}, "status"),
        ("/api/v1/alerts", {"type": NUL}, "type"),
        ("/api/v1/alerts", {"since": f"2026-11-22T10:00:00Z{NUL}"}, "since"),
        ("/api/v1/alerts", {"limit": f"1{NUL}"}, "limit"),
        ("/api/v1/devices/{device}/readings", {"metric": f"heart_rate{NUL}"}, "metric"),
        ("/api/v1/devices/{device}/readings", {"until": NUL}, "until"),
    ],
)
def test_nul_in_a_query_filter_is_named(
    api: Api, reading_device: dict, path: str, params: dict, field_name: str
) -> None:
    response = api.client.get(path.format(device=reading_device["device_id"]), params=params, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert fields(response) == [field_name]


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"name": f"Ada{NUL}"}, "name"),
        ({"address": f"12 St James's Square{NUL}"}, "address"),
        ({"email": f"ada{NUL}@example.org"}, "email"),
        ({"policy": {"number": f"POL{NUL}", "line": "home"}}, "policy.number"),
        ({"emergency_contacts": [{"name": "B", "phone": "+44 1", "relation": f"son{NUL}"}]},
         "emergency_contacts.0.relation"),
        ({"outreach_urls": [f"mailto://ada@example.org{NUL}"]}, "outreach_urls"),
        ({"timezone": f"UTC{NUL}"}, "timezone"),
        ({"care_plan": {"tachycardia": {"enabled": NUL}}}, "care_plan"),
        ({"care_plan": {"tachycardia": {"enabled": "\ud800"}}}, "care_plan"),  # a lone surrogate
        ({"care_plan": {"tachycardia": {"tiers.0.threshold": float("nan")}}}, "care_plan"),
        ({"birth_date": 0}, "birth_date"),  # a unix time: RFC 3339 only
        ({"birth_date": "1941-12-10T00:00:00Z"}, "birth_date"),
    ],
)
def test_a_member_body_field_the_database_could_not_store_is_named(api: Api, body: dict, field_name: str) -> None:
    response = post_raw_json(api, "/api/v1/members", {**MEMBER, **body})
    assert response.status_code == 422, response.text
    assert fields(response) == [field_name]


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({f"name{NUL}": "Ada"}, f"name{NUL}"),
        ({"care_plan": {f"tachy{NUL}cardia": {}}}, "care_plan"),
        ({"care_plan": {"tachycardia": {"\udfff": 1}}}, "care_plan"),
        ({"policy": {"number": "P", "line": "home", f"x{NUL}": 1}}, f"policy.x{NUL}"),
    ],
)
def test_a_json_key_the_database_could_not_store_is_named(api: Api, body: dict, field_name: str) -> None:
    response = post_raw_json(api, "/api/v1/members", {**MEMBER, **body})
    assert response.status_code == 422, response.text
    assert fields(response) == [field_name]


def test_nul_in_device_gateway_and_care_plan_bodies_is_named(api: Api) -> None:
    member = create_member(api)
    device = {"device_id": unique("d"), "kind": "home", "member_id": member["id"], "location": f"kitchen{NUL}"}
    response = api.client.post("/api/v1/devices", json=device, headers=ADMIN)
    assert (response.status_code, fields(response)) == (422, ["location"])
    gateway = {"id": unique("hub"), "name": f"hub{NUL}"}
    response = api.client.post("/api/v1/gateways", json=gateway, headers=ADMIN)
    assert (response.status_code, fields(response)) == (422, ["name"])
    plan = {"overrides": {}, "note": f"athlete{NUL}"}
    response = api.client.put(f"/api/v1/members/{member['id']}/care_plan", json=plan, headers=ADMIN)
    assert (response.status_code, fields(response)) == (422, ["note"])
    plan = {"overrides": {f"{NUL}": {"enabled": False}}}
    response = api.client.put(f"/api/v1/members/{member['id']}/care_plan", json=plan, headers=ADMIN)
    assert (response.status_code, fields(response)) == (422, ["overrides"])


@pytest.mark.parametrize("raw", [b'{"name": "\xff"}', b"[" * 100_000], ids=["not-utf8", "too-deep"])
def test_a_body_that_cannot_be_decoded_is_named_body(api: Api, raw: bytes) -> None:
    response = api.client.post(
        "/api/v1/members", content=raw, headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert fields(response) == ["body"]


def test_a_value_the_database_refuses_is_a_422_not_a_500(database_url: str) -> None:
    # The last line behind validation: a route that lets a bad value through to PostgreSQL.
    app = create_app(_settings(database_url), RecordingAccounts(), care_plans=RecordingCarePlans())

    async def leaky(value: str, pool: Pool) -> None:
        async with pool.connection() as conn:
            await conn.execute("SELECT %s::uuid", (value,))

    app.add_api_route("/leaky", leaky)
    with TestClient(app, raise_server_exceptions=False) as client:
        for value in (f"urn:uuid:{uuid.uuid4()}", f"{uuid.uuid4()}{NUL}"):
            response = client.get("/leaky", params={"value": value})
            assert response.status_code == 422, response.text
            assert fields(response) == ["request"]


def test_a_wrong_method_lists_every_method_of_the_path(api: Api) -> None:
    response = api.client.delete("/api/v1/members/m-1/care_plan", headers=ADMIN)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"


# --- the published error schema is what the API answers --------------------------------------------

ERROR_MODELS = {"FieldErrors": FieldErrors, "ErrorMessage": ErrorMessage}


def declared_error_model(app, template: str, method: str, status: int) -> type:
    """The model the OpenAPI schema declares for this answer; KeyError when the status is not declared."""
    response = app.openapi()["paths"][template][method]["responses"][str(status)]
    return ERROR_MODELS[response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]


def test_every_error_answer_is_declared_with_the_body_it_has(
    api: Api, database_url: str, alert_rows: dict, reading_device: dict
) -> None:
    member = create_member(api, care_manager_id="cm-schema")
    stranger = care_manager_headers(database_url, "cm-stranger")
    device = reading_device["device_id"]
    answers = [
        ("get", "/api/v1/alerts", "/api/v1/alerts", {}, None, 401),
        ("get", "/api/v1/alerts", "/api/v1/alerts", stranger, {"member_id": alert_rows["mine"]}, 403),
        ("get", "/api/v1/alerts", "/api/v1/alerts", ADMIN, {"since": "1700000000"}, 422),
        ("get", "/api/v1/alerts/{alert_id}", f"/api/v1/alerts/{uuid.uuid4()}", ADMIN, None, 404),
        ("get", "/api/v1/alerts/{alert_id}", f"/api/v1/alerts/{alert_rows['new']}", stranger, None, 403),
        ("get", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/urn:uuid:x", ADMIN, None, 422),
        ("get", "/api/v1/members/{member_id}", "/api/v1/members/nobody", ADMIN, None, 404),
        ("get", "/api/v1/members/{member_id}", f"/api/v1/members/{member['id']}", stranger, None, 403),
        ("get", "/api/v1/members/{member_id}/care_plan", "/api/v1/members/nobody/care_plan", ADMIN, None, 404),
        ("get", "/api/v1/devices/{device_id}/readings", f"/api/v1/devices/{device}/readings", stranger, None, 403),
        ("get", "/api/v1/devices/{device_id}/readings", "/api/v1/devices/ghost/readings", ADMIN, None, 404),
        ("get", "/api/v1/devices/{device_id}/readings", f"/api/v1/devices/{device}/readings", ADMIN,
         {"metric": "mood"}, 422),
    ]
    for method, template, path, headers, params, status in answers:
        response = api.client.request(method, path, headers=headers, params=params)
        assert response.status_code == status, (path, response.text)
        declared_error_model(api.client.app, template, method, status).model_validate(response.json())

    posts = [
        ("/api/v1/members", member_body(id=member["id"]), ADMIN, 409),
        ("/api/v1/members", member_body(), stranger, 403),
        ("/api/v1/members", {"name": NUL}, ADMIN, 422),
        ("/api/v1/devices", {"device_id": device, "kind": "wearable", "member_id": member["id"]}, ADMIN, 409),
        ("/api/v1/gateways", {"id": unique("hub"), "device_ids": ["ghost"]}, ADMIN, 422),
    ]
    for path, body, headers, status in posts:
        response = api.client.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        declared_error_model(api.client.app, path, "post", status).model_validate(response.json())


def test_a_body_over_the_limit_is_413_in_one_of_the_declared_forms(api: Api) -> None:
    declared = api.client.app.openapi()["paths"]["/api/v1/members"]["post"]["responses"]["413"]["content"]
    too_large = MAX_BODY_BYTES + 1

    def streamed():  # no Content-Length: the limit is found while reading
        for _ in range(too_large // 65_536 + 1):
            yield b" " * 65_536

    headers = {**ADMIN, "Content-Type": "application/json"}
    for content in (b" " * too_large, streamed()):
        response = api.client.post("/api/v1/members", content=content, headers=headers)
        assert response.status_code == 413
        media_type = response.headers["content-type"].split(";")[0]
        assert media_type in declared
        if media_type == "application/json":
            ErrorMessage.model_validate(response.json())


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
