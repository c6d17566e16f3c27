"""The published OpenAPI schema offers what CONTRACT.md section 3 promises, behind bearer auth."""

from __future__ import annotations

import pytest

from alerts.app import create_app
from vigil.settings import Settings

CONTRACT_CALLS = [
    ("post", "/api/v1/members"),
    ("post", "/api/v1/devices"),
    ("post", "/api/v1/gateways"),
    ("get", "/api/v1/devices/{device_id}/readings"),
    ("get", "/api/v1/alerts"),
    ("get", "/api/v1/alerts/{alert_id}"),
    ("get", "/health"),
]


@pytest.fixture(scope="module")
def schema() -> dict:
    return create_app(Settings(), accounts=None).openapi()


@pytest.mark.parametrize(("method", "path"), CONTRACT_CALLS)
def test_contract_call_is_in_the_schema(schema, method, path):
    assert method in schema["paths"].get(path, {}), f"{method.upper()} {path} missing from the OpenAPI schema"


def test_api_calls_require_a_bearer_token(schema):
    schemes = schema["components"]["securitySchemes"].values()
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes)
    for path, operations in schema["paths"].items():
        if path.startswith("/api/v1"):
            for operation in operations.values():
                assert operation.get("security"), f"{path} is not marked as needing a token"


def test_device_query_filters_are_documented(schema):
    params = {p["name"] for p in schema["paths"]["/api/v1/devices/{device_id}/readings"]["get"]["parameters"]}
    assert {"metric", "since", "until", "limit"} <= params
    params = {p["name"] for p in schema["paths"]["/api/v1/alerts"]["get"]["parameters"]}
    assert {"member_id", "device_id", "status", "type", "since"} <= params
