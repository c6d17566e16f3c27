"""Care plans through the API, against a real PostgreSQL and a real Kafka-protocol broker.

The module starts private Tansu brokers on 293xx ports (the rest of the suite uses 19092) and a
database of its own. A change is published before the transaction that stores it commits, so a
503 for a Kafka outage leaves the database as it was and a repeated request goes through.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from api.app import create_app
from api.care_plan_publisher import KafkaCarePlanPublisher
from stack import kafka
from vigil.care_plan_events import CarePlanChanged, MalformedCarePlan, care_plan_key, decode_care_plan, encode_care_plan
from vigil.rules.catalog import DEFAULT_RULES
from vigil.settings import Settings
from vigil.storage.schema import ensure_database, migrate
from vigil.tokens import issue_token
from vigil.topics import CARE_PLANS

pytestmark = pytest.mark.infra

STATE_ROOT = Path(__file__).resolve().parents[2] / ".vigil-test-careplans"
BOOTSTRAP = "127.0.0.1:29392"
# A broker of its own for the outage test, which stops it and starts it again.
OUTAGE_BOOTSTRAP = "127.0.0.1:29393"
# Nothing listens here.
DEAD_BOOTSTRAP = "127.0.0.1:29394"
DATABASE_URL = urlunparse(
    urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil"))._replace(
        path="/vigil_careplans_test"
    )
)
ADMIN_TOKEN = "test-admin-token-careplans-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# As JSON has them (tuples become lists).
DEFAULTS = {rule.type: json.loads(json.dumps(asdict(rule))) for rule in DEFAULT_RULES}
PLAN = {"tachycardia": {"tiers.0.threshold": 130, "tiers.0.minutes": 15}, "water_leak": {"enabled": False}}


def settings(bootstrap: str, state: str = "unused") -> Settings:
    return Settings(
        _env_file=None,
        DATABASE_URL=DATABASE_URL,
        VIGIL_ADMIN_TOKEN=ADMIN_TOKEN,
        VIGIL_KAFKA_BOOTSTRAP=bootstrap,
        VIGIL_STATE_DIR=str(STATE_ROOT / state),
    )


def app_client(bootstrap: str, *, timeout_s: float = 5.0) -> TestClient:
    publisher = KafkaCarePlanPublisher(settings(bootstrap), timeout_s=timeout_s)
    app = create_app(settings(bootstrap), None, services=[publisher], care_plans=publisher)
    return TestClient(app)


@pytest.fixture(scope="module")
def database() -> str:
    with psycopg.connect(make_conninfo(DATABASE_URL, dbname="postgres"), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS vigil_careplans_test WITH (FORCE)")
    ensure_database(DATABASE_URL)
    migrate(DATABASE_URL, retention_days=30)
    return DATABASE_URL


@pytest.fixture(scope="module")
def broker() -> Iterator[Settings]:
    """A private Tansu; one left behind by an interrupted run is stopped first (its state folder is fixed)."""
    started = settings(BOOTSTRAP, "main")
    kafka.down(started)
    kafka.up(started)
    yield started
    kafka.down(started)
    shutil.rmtree(STATE_ROOT / "main", ignore_errors=True)
    with contextlib.suppress(OSError):
        STATE_ROOT.rmdir()  # only when the outage test has cleaned up too


@pytest.fixture(scope="module")
def client(database: str, broker: Settings) -> Iterator[TestClient]:
    with app_client(BOOTSTRAP) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def member_body(**changes: object) -> dict:
    body = {
        "name": "Ada Lovelace",
        "policy": {"number": "POL-1", "line": "both"},
        "care_manager_id": "cm-a",
        "consent": {"monitoring": True, "outreach": True, "auto_claims": False},
    }
    return body | changes


def create_member(client: TestClient, **changes: object) -> str:
    response = client.post("/api/v1/members", json=member_body(**changes), headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def stored(member_id: str) -> dict:
    with psycopg.connect(DATABASE_URL) as conn:
        return conn.execute("SELECT care_plan FROM members WHERE id = %s", (member_id,)).fetchone()[0]


def care_manager(care_manager_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(DATABASE_URL, 'care_manager', care_manager_id)}"}


def published(bootstrap: str, member_id: str) -> list[CarePlanChanged]:
    """The member's records on the care-plans topic, in offset order, as the stream worker decodes them."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("care-plans-test"), "enable.auto.commit": False}
    )
    events = []
    try:
        partitions = consumer.list_topics(CARE_PLANS, timeout=10).topics[CARE_PLANS].partitions
        for partition in sorted(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(CARE_PLANS, partition), timeout=10)
            consumer.assign([TopicPartition(CARE_PLANS, partition, low)])
            offset, deadline = low, time.monotonic() + 20
            while offset < high:
                assert time.monotonic() < deadline, f"could not read {CARE_PLANS}[{partition}] up to {high}"
                message = consumer.poll(1)
                if message is None or message.error():
                    continue
                offset = message.offset() + 1
                if message.key() == care_plan_key(member_id):
                    events.append(decode_care_plan(message.value(), message.key()))
    finally:
        consumer.close()
    return events


def end_offsets(bootstrap: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("care-plans-test")})
    try:
        partitions = consumer.list_topics(CARE_PLANS, timeout=10).topics[CARE_PLANS].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(CARE_PLANS, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def fields(response) -> list[str]:
    return [d["field"] for d in response.json()["detail"]]


def until(check: Callable[[], bool], timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


# --- storing and publishing -----------------------------------------------------------------------


def test_a_valid_plan_is_stored_published_and_answered(client: TestClient) -> None:
    member_id = create_member(client)
    response = client.put(
        f"/api/v1/members/{member_id}/care_plan", json={"overrides": PLAN, "note": "marathon runner"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    plan = response.json()
    assert plan["member_id"] == member_id
    assert (plan["version"], plan["overrides"], plan["note"]) == (1, PLAN, "marathon runner")
    assert plan["updated_by"] == "admin"
    assert plan["updated_at"].endswith("Z")
    assert stored(member_id) == {key: plan[key] for key in ("version", "overrides", "note", "updated_at", "updated_by")}
    [event] = published(BOOTSTRAP, member_id)
    assert (event.member_id, event.version, event.overrides) == (member_id, 1, PLAN)
    assert abs(event.changed_at_ms - time.time() * 1000) < 60_000
    # The member itself shows its overrides under `care_plan`, as before plans had versions.
    assert client.get(f"/api/v1/members/{member_id}", headers=ADMIN).json()["care_plan"] == PLAN


def test_each_change_increments_the_version_and_replaces_the_overrides(client: TestClient) -> None:
    member_id = create_member(client)
    url = f"/api/v1/members/{member_id}/care_plan"
    versions = []
    for overrides in (PLAN, {"tachycardia": {"tiers.0.threshold": 140}}, {}):
        response = client.put(url, json={"overrides": overrides}, headers=ADMIN)
        assert response.status_code == 200, response.text
        versions.append(response.json()["version"])
    assert versions == [1, 2, 3]
    assert [(e.version, e.overrides) for e in published(BOOTSTRAP, member_id)] == [
        (1, PLAN),
        (2, {"tachycardia": {"tiers.0.threshold": 140}}),
        (3, {}),
    ]
    plan = client.get(url, headers=ADMIN).json()
    assert (plan["version"], plan["overrides"], plan["note"]) == (3, {}, None)


def test_concurrent_changes_reach_the_topic_in_version_order(client: TestClient) -> None:
    # Compaction keeps a member's last record: it must be the newest plan, as in the database.
    member_id = create_member(client)
    url = f"/api/v1/members/{member_id}/care_plan"

    def put(threshold: int):
        return client.put(url, json={"overrides": {"tachycardia": {"tiers.0.threshold": threshold}}}, headers=ADMIN)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(put, range(125, 131)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["version"] for a in answers) == [1, 2, 3, 4, 5, 6]
    events = published(BOOTSTRAP, member_id)
    assert [e.version for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[-1].overrides == stored(member_id)["overrides"]


def test_a_member_enrolled_with_a_plan_starts_at_version_1_and_is_published(client: TestClient) -> None:
    member_id = create_member(client, care_plan=PLAN)
    plan = client.get(f"/api/v1/members/{member_id}/care_plan", headers=ADMIN).json()
    assert (plan["version"], plan["overrides"]) == (1, PLAN)
    assert [(e.version, e.overrides) for e in published(BOOTSTRAP, member_id)] == [(1, PLAN)]


def test_a_member_enrolled_without_a_plan_has_version_0_and_nothing_is_published(client: TestClient) -> None:
    member_id = create_member(client)
    plan = client.get(f"/api/v1/members/{member_id}/care_plan", headers=ADMIN).json()
    assert (plan["version"], plan["overrides"], plan["updated_at"]) == (0, {}, None)
    assert published(BOOTSTRAP, member_id) == []


def test_starting_the_api_republishes_nothing(database: str, broker: Settings, client: TestClient) -> None:
    create_member(client, care_plan=PLAN)
    before = end_offsets(BOOTSTRAP)
    publisher = KafkaCarePlanPublisher(settings(BOOTSTRAP))
    app = create_app(settings(BOOTSTRAP), None, services=[publisher], care_plans=publisher)
    with TestClient(app) as other:
        assert until(lambda: other.portal.call(publisher.probe))
    assert end_offsets(BOOTSTRAP) == before


# --- what applies ---------------------------------------------------------------------------------


def test_get_shows_every_rules_effective_parameters(client: TestClient) -> None:
    member_id = create_member(client, care_plan=PLAN)
    plan = client.get(f"/api/v1/members/{member_id}/care_plan", headers=ADMIN).json()
    assert set(plan["rules"]) == set(DEFAULTS)
    assert plan["problems"] == []
    tachycardia = plan["rules"]["tachycardia"]
    assert tachycardia["enabled"] is True
    assert tachycardia["overridden"] == ["tiers.0.minutes", "tiers.0.threshold"]
    assert tachycardia["overridable"]["tiers.0.threshold"] == {"type": "number", "value": 130, "default": 120}
    assert tachycardia["overridable"]["tiers.0.minutes"] == {"type": "integer", "value": 15, "default": 10}
    assert tachycardia["overridable"]["clear_threshold"] == {"type": "number", "value": 110, "default": 110}
    expected_tier = DEFAULTS["tachycardia"]["tiers"][0] | {"threshold": 130, "minutes": 15}
    assert tachycardia["parameters"] == DEFAULTS["tachycardia"] | {"tiers": [expected_tier]}
    water_leak = plan["rules"]["water_leak"]
    assert (water_leak["enabled"], water_leak["overridden"]) == (False, ["enabled"])
    assert water_leak["overridable"]["enabled"] == {"type": "boolean", "value": False, "default": True}
    assert water_leak["parameters"] == DEFAULTS["water_leak"]
    for rule_type, rule in plan["rules"].items():
        if rule_type not in PLAN:
            assert (rule["enabled"], rule["overridden"], rule["parameters"]) == (True, [], DEFAULTS[rule_type])
            assert all(p["value"] == p["default"] for p in rule["overridable"].values())


def test_a_member_without_a_plan_sees_the_defaults(client: TestClient) -> None:
    member_id = create_member(client)
    rules = client.get(f"/api/v1/members/{member_id}/care_plan", headers=ADMIN).json()["rules"]
    assert {t: (r["enabled"], r["parameters"]) for t, r in rules.items()} == {t: (True, p) for t, p in DEFAULTS.items()}


def test_a_stored_plan_that_no_longer_fits_the_rules_shows_the_defaults_and_why(client: TestClient) -> None:
    # As after a release that renamed a parameter: the stream worker applies the defaults, and GET says so.
    member_id = create_member(client)
    with psycopg.connect(DATABASE_URL) as conn:
        conn.execute(
            "UPDATE members SET care_plan = %s WHERE id = %s",
            (Jsonb({"version": 4, "overrides": {"tachycardia": {"threshold_bpm": 130}}}), member_id),
        )
    plan = client.get(f"/api/v1/members/{member_id}/care_plan", headers=ADMIN).json()
    assert (plan["version"], plan["overrides"]) == (4, {"tachycardia": {"threshold_bpm": 130}})
    assert [p.split(":")[0] for p in plan["problems"]] == ["tachycardia.threshold_bpm"]
    assert plan["rules"]["tachycardia"]["parameters"] == DEFAULTS["tachycardia"]


# --- refusals -------------------------------------------------------------------------------------

INVALID = [
    ({"tachycardia": {"tiers.0.minutes": -5}}, "overrides.tachycardia.tiers.0.minutes"),
    ({"tachycardia": {"tiers.0.minutes": 0}}, "overrides.tachycardia.tiers.0.minutes"),
    ({"tachycardia": {"tiers.0.minutes": 2.5}}, "overrides.tachycardia.tiers.0.minutes"),
    ({"tachycardia": {"tiers.0.threshold": "high"}}, "overrides.tachycardia.tiers.0.threshold"),
    ({"tachycardia": {"tiers.0.threshold": True}}, "overrides.tachycardia.tiers.0.threshold"),
    ({"tachycardia": {"tiers.0.threshold": None}}, "overrides.tachycardia.tiers.0.threshold"),
    ({"tachycardia": {"tiers.0.threshold": 400}}, "overrides.tachycardia.tiers.0.threshold"),
    ({"tachycardia": {"clear_threshold": 125}}, "overrides.tachycardia.clear_threshold"),
    ({"tachycardia": {"enabled": "no"}}, "overrides.tachycardia.enabled"),
    ({"tachycardia": {"threshold": 130}}, "overrides.tachycardia.threshold"),
    ({"tachycardia": {"tiers.1.threshold": 130}}, "overrides.tachycardia.tiers.1.threshold"),
    ({"tachycardia": {"severity": "low"}}, "overrides.tachycardia.severity"),
    ({"co": {"tiers.0.threshold": 30}}, "overrides.co.tiers.0.threshold"),
    ({"water_leak": {"span_s": -60}}, "overrides.water_leak.span_s"),
    ({"no_such_rule": {"enabled": False}}, "overrides.no_such_rule"),
    ({"tachycardia": 130}, "overrides.tachycardia"),
]


@pytest.mark.parametrize(("overrides", "field_name"), INVALID)
def test_an_invalid_override_is_422_naming_the_field_and_changes_nothing(
    client: TestClient, overrides: dict, field_name: str
) -> None:
    member_id = create_member(client, care_plan=PLAN)
    response = client.put(f"/api/v1/members/{member_id}/care_plan", json={"overrides": overrides}, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert field_name in fields(response)
    assert all(d["message"] for d in response.json()["detail"])
    assert stored(member_id)["version"] == 1
    assert [e.version for e in published(BOOTSTRAP, member_id)] == [1]


def test_every_problem_of_a_plan_is_named_at_once(client: TestClient) -> None:
    member_id = create_member(client)
    overrides = {"tachycardia": {"tiers.0.minutes": -5, "tiers.0.threshold": "high"}, "no_such_rule": {}}
    response = client.put(f"/api/v1/members/{member_id}/care_plan", json={"overrides": overrides}, headers=ADMIN)
    assert response.status_code == 422
    assert set(fields(response)) == {
        "overrides.tachycardia.tiers.0.minutes",
        "overrides.tachycardia.tiers.0.threshold",
        "overrides.no_such_rule",
    }
    minutes = next(d for d in response.json()["detail"] if d["field"] == "overrides.tachycardia.tiers.0.minutes")
    assert minutes["loc"] == ["body", "overrides", "tachycardia", "tiers.0.minutes"]
    assert "-5" in minutes["message"]


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({}, "overrides"),
        ({"overrides": ["tachycardia"]}, "overrides"),
        ({"overrides": {}, "notes": "typo"}, "notes"),
        ({"overrides": {}, "note": "x" * 2001}, "note"),
    ],
)
def test_a_malformed_body_is_422_naming_the_field(client: TestClient, body: dict, field_name: str) -> None:
    member_id = create_member(client)
    response = client.put(f"/api/v1/members/{member_id}/care_plan", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert field_name in fields(response)


@pytest.mark.parametrize(("overrides", "field_name"), INVALID)
def test_enrolling_with_an_invalid_plan_is_422_and_creates_nobody(
    client: TestClient, overrides: dict, field_name: str
) -> None:
    member_id = unique("m")
    response = client.post("/api/v1/members", json=member_body(id=member_id, care_plan=overrides), headers=ADMIN)
    assert response.status_code == 422, response.text
    assert field_name.replace("overrides.", "care_plan.", 1) in fields(response)
    assert client.get(f"/api/v1/members/{member_id}", headers=ADMIN).status_code == 404


def test_the_members_care_manager_may_change_it_and_is_recorded(client: TestClient) -> None:
    member_id = create_member(client, care_manager_id="cm-a")
    headers = care_manager("cm-a")
    response = client.put(f"/api/v1/members/{member_id}/care_plan", json={"overrides": PLAN}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["updated_by"] == "care_manager:cm-a"
    assert client.get(f"/api/v1/members/{member_id}/care_plan", headers=headers).status_code == 200


@pytest.mark.parametrize("assigned_to", ["cm-b", None])
def test_another_care_managers_member_is_403(client: TestClient, assigned_to: str | None) -> None:
    member_id = create_member(client, care_manager_id=assigned_to)
    headers = care_manager("cm-a")
    url = f"/api/v1/members/{member_id}/care_plan"
    assert client.put(url, json={"overrides": PLAN}, headers=headers).status_code == 403
    # Refused before the body is judged: nothing about the member leaks through a 422.
    assert client.put(url, json={"overrides": {"x": 1}}, headers=headers).status_code == 403
    assert client.get(url, headers=headers).status_code == 403
    assert stored(member_id)["version"] == 0
    assert published(BOOTSTRAP, member_id) == []


def test_an_unknown_member_is_404(client: TestClient) -> None:
    url = "/api/v1/members/nobody/care_plan"
    assert client.put(url, json={"overrides": PLAN}, headers=ADMIN).status_code == 404
    assert client.get(url, headers=ADMIN).status_code == 404


def test_a_care_plan_needs_a_token(client: TestClient) -> None:
    member_id = create_member(client)
    assert client.put(f"/api/v1/members/{member_id}/care_plan", json={"overrides": PLAN}).status_code == 401
    assert client.get(f"/api/v1/members/{member_id}/care_plan").status_code == 401


# --- Kafka down -----------------------------------------------------------------------------------


def test_with_kafka_unreachable_a_change_is_503_and_nothing_changes(database: str) -> None:
    with app_client(DEAD_BOOTSTRAP, timeout_s=2) as client:
        member_id = create_member(client)  # no plan: nothing to publish, so no Kafka needed
        started = time.monotonic()
        response = client.put(f"/api/v1/members/{member_id}/care_plan", json={"overrides": PLAN}, headers=ADMIN)
        assert response.status_code == 503
        assert time.monotonic() - started < 10
        assert "not changed" in response.json()["detail"]
        assert stored(member_id)["version"] == 0
        assert client.get(f"/api/v1/members/{member_id}/care_plan", headers=ADMIN).json()["overrides"] == {}

        enrolled = unique("m")
        response = client.post("/api/v1/members", json=member_body(id=enrolled, care_plan=PLAN), headers=ADMIN)
        assert response.status_code == 503
        assert "not created" in response.json()["detail"]
        assert client.get(f"/api/v1/members/{enrolled}", headers=ADMIN).status_code == 404


def test_a_change_refused_during_an_outage_goes_through_when_sent_again(database: str) -> None:
    outage = settings(OUTAGE_BOOTSTRAP, "outage")
    kafka.down(outage)
    kafka.up(outage)
    try:
        with app_client(OUTAGE_BOOTSTRAP) as client:
            member_id = create_member(client, care_plan=PLAN)
            url = f"/api/v1/members/{member_id}/care_plan"
            changed = {"overrides": {"tachycardia": {"tiers.0.threshold": 140}}}

            kafka.down(outage)
            response = client.put(url, json=changed, headers=ADMIN)
            assert response.status_code == 503, response.text
            assert stored(member_id)["version"] == 1
            assert client.get(url, headers=ADMIN).json()["overrides"] == PLAN

            kafka.up(outage)  # memory storage: an empty broker, as after losing the old one
            assert until(lambda: client.put(url, json=changed, headers=ADMIN).status_code == 200, 60)
            assert stored(member_id)["overrides"] == changed["overrides"]
            [event] = published(OUTAGE_BOOTSTRAP, member_id)
            assert (event.version, event.overrides) == (stored(member_id)["version"], changed["overrides"])
    finally:
        kafka.down(outage)
        shutil.rmtree(STATE_ROOT / "outage", ignore_errors=True)


# --- the record format the stream worker decodes --------------------------------------------------


def test_a_record_decodes_to_the_event_it_encodes() -> None:
    event = CarePlanChanged(member_id="m-1", version=3, overrides=PLAN, changed_at_ms=1_700_000_000_000)
    assert care_plan_key("m-1") == b"m-1"
    assert decode_care_plan(encode_care_plan(event), b"m-1") == event
    assert decode_care_plan(None, b"m-1") is None


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b"not json", None),
        (b'{"member_id": "m-1", "version": 0, "overrides": {}, "changed_at_ms": 1}', None),
        (b'{"member_id": "m-1", "version": 1, "overrides": [], "changed_at_ms": 1}', None),
        (b'{"version": 1, "overrides": {}, "changed_at_ms": 1}', None),
        (b'{"member_id": "m-1", "version": 1, "overrides": {}, "changed_at_ms": 1}', b"m-2"),
    ],
)
def test_a_malformed_record_is_refused_with_a_reason(value: bytes, key: bytes | None) -> None:
    with pytest.raises(MalformedCarePlan):
        decode_care_plan(value, key)
