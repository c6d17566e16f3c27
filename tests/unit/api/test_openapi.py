"""The published OpenAPI schema offers what docs/interface.md promises, behind bearer auth, and declares
the errors each call really answers with the bodies the handlers write."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.errors import FieldErrors, field_errors
from vigil.settings import Settings

CONTRACT_CALLS = [
    ("post", "/api/v1/members"),
    ("post", "/api/v1/devices"),
    ("post", "/api/v1/gateways"),
    ("get", "/api/v1/devices/{device_id}/readings"),
    ("get", "/api/v1/alerts"),
    ("get", "/api/v1/alerts/{alert_id}"),
    ("post", "/api/v1/care_managers"),
    ("get", "/api/v1/care_managers/{care_manager_id}"),
    ("post", "/api/v1/alerts/{alert_id}/ack"),
    ("post", "/api/v1/alerts/{alert_id}/resolve"),
    ("post", "/api/v1/alerts/{alert_id}/escalate"),
    ("post", "/api/v1/alerts/{alert_id}/snooze"),
    ("post", "/api/v1/alerts/{alert_id}/notes"),
    ("post", "/api/v1/alerts/{alert_id}/assign"),
    ("get", "/api/v1/alerts/{alert_id}/outreach"),
    ("get", "/api/v1/claims"),
    ("get", "/api/v1/claims/{claim_id}"),
    ("get", "/api/v1/claims/{claim_id}/evidence"),
    ("get", "/api/v1/claims/{claim_id}/fhir"),
    ("post", "/api/v1/claims/{claim_id}/confirm"),
    ("post", "/api/v1/claims/{claim_id}/send_again"),
    ("get", "/api/v1/incidents"),
    ("post", "/api/v1/claims/{claim_id}/status"),
    ("get", "/health"),
]
# The insurer's answer is signed over its body instead of carrying a token (CONTRACT §3, §4).
SIGNED_CALLS = {("post", "/api/v1/claims/{claim_id}/status")}


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
            for method, operation in operations.items():
                schemes = {name for requirement in operation.get("security", []) for name in requirement}
                expected = {"InsurerSignature"} if (method, path) in SIGNED_CALLS else {"HTTPBearer"}
                assert schemes == expected, f"{method.upper()} {path} is not marked as needing {expected}"


def test_the_insurers_answer_is_published_as_signed_over_its_body(schema):
    scheme = schema["components"]["securitySchemes"]["InsurerSignature"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-Vigil-Signature")
    body = schema["paths"]["/api/v1/claims/{claim_id}/status"]["post"]["requestBody"]
    fields = body["content"]["application/json"]["schema"]["properties"]
    assert set(fields) == {"status", "insurer_claim_number", "note", "claim_id"}
    assert fields["status"]["enum"] == ["accepted", "needs_info", "rejected", "paid"]


def test_device_query_filters_are_documented(schema):
    params = {p["name"] for p in schema["paths"]["/api/v1/devices/{device_id}/readings"]["get"]["parameters"]}
    assert {"metric", "since", "until", "limit"} <= params
    params = {p["name"] for p in schema["paths"]["/api/v1/alerts"]["get"]["parameters"]}
    assert {"member_id", "device_id", "status", "type", "since"} <= params


# What each call really answers besides success; every /api/v1 call also answers 401, 422 and 503.
ERROR_STATUSES = {
    ("post", "/api/v1/members"): {403, 409, 413},
    ("get", "/api/v1/members/{member_id}"): {403, 404},
    ("put", "/api/v1/members/{member_id}/care_plan"): {403, 404, 413},
    ("get", "/api/v1/members/{member_id}/care_plan"): {403, 404},
    ("post", "/api/v1/devices"): {403, 409, 413},
    ("get", "/api/v1/devices/{device_id}/readings"): {403, 404},
    ("post", "/api/v1/gateways"): {403, 409, 413},
    ("get", "/api/v1/alerts"): {403},
    ("get", "/api/v1/alerts/{alert_id}"): {403, 404},
    ("post", "/api/v1/care_managers"): {403, 409, 413},
    ("get", "/api/v1/care_managers/{care_manager_id}"): {403, 404},
    ("post", "/api/v1/alerts/{alert_id}/ack"): {403, 404, 409},
    ("post", "/api/v1/alerts/{alert_id}/resolve"): {403, 404, 409, 413},
    ("post", "/api/v1/alerts/{alert_id}/escalate"): {403, 404, 409},
    ("post", "/api/v1/alerts/{alert_id}/snooze"): {403, 404, 409, 413},
    ("post", "/api/v1/alerts/{alert_id}/notes"): {403, 404, 409, 413},
    ("post", "/api/v1/alerts/{alert_id}/assign"): {403, 404, 409, 413},
    ("post", "/api/v1/alerts/{alert_id}/calls"): {403, 404, 409, 413},
    ("get", "/api/v1/alerts/{alert_id}/outreach"): {403, 404},
    ("get", "/api/v1/tasks"): {403},
    ("post", "/api/v1/tasks/{task_id}/done"): {403, 404, 409, 413},
    ("get", "/api/v1/claims"): {403},
    ("get", "/api/v1/claims/{claim_id}"): {403, 404},
    ("get", "/api/v1/claims/{claim_id}/evidence"): {403, 404},
    ("get", "/api/v1/claims/{claim_id}/fhir"): {403, 404},
    ("post", "/api/v1/claims/{claim_id}/confirm"): {403, 404, 409},
    ("post", "/api/v1/claims/{claim_id}/send_again"): {403, 404, 409},
    ("get", "/api/v1/incidents"): {403},
    ("post", "/api/v1/claims/{claim_id}/status"): {404, 409, 413},
    ("get", "/api/v1/audit"): {403},
}


def _api_operations(schema: dict) -> list[tuple[str, str]]:
    return [(m, p) for p, ops in schema["paths"].items() if p.startswith("/api/v1") for m in ops]


def test_every_api_call_lists_the_error_statuses_it_answers(schema):
    assert sorted(_api_operations(schema)) == sorted(ERROR_STATUSES), "a call was added: list its errors here"
    for (method, path), statuses in ERROR_STATUSES.items():
        responses = schema["paths"][path][method]["responses"]
        declared = {int(code) for code in responses if code.startswith(("4", "5"))}
        assert declared == statuses | {401, 422, 503}, f"{method.upper()} {path}"


def test_error_bodies_are_the_api_s_own_not_fastapi_s_default(schema):
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "ValidationError" not in schema["components"]["schemas"]
    for method, path in _api_operations(schema):
        for code, response in schema["paths"][path][method]["responses"].items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/FieldErrors" if code == "422" else "/ErrorMessage"), (method, path, code)


def test_the_error_schemas_are_the_shapes_the_handlers_write(schema):
    problem = schema["components"]["schemas"]["FieldProblem"]
    assert set(problem["required"]) == set(problem["properties"]) == {"field", "message", "type", "loc"}
    assert problem["additionalProperties"] is False
    assert schema["components"]["schemas"]["FieldErrors"]["properties"]["detail"]["items"]["$ref"].endswith(
        "/FieldProblem"
    )
    assert schema["components"]["schemas"]["ErrorMessage"]["properties"]["detail"]["type"] == "string"


def test_the_body_a_validation_error_becomes_fits_the_declared_schema():
    # The 422 handler's own output for a typical error, checked against the published model.
    errors = field_errors([{"loc": ("body", "policy", "line"), "msg": "Input should be 'home'", "type": "enum"}])
    body = FieldErrors.model_validate({"detail": errors})
    assert body.detail[0].field == "policy.line"


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/alerts/{alert_id}", "alert_id"),
        ("/api/v1/members/{member_id}", "member_id"),
        ("/api/v1/devices/{device_id}/readings", "device_id"),
        ("/api/v1/claims/{claim_id}", "claim_id"),
    ],
)
def test_path_ids_are_published_with_the_pattern_they_are_checked_against(schema, path, name):
    [param] = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == name]
    assert param["schema"]["pattern"].startswith("^") and param["schema"]["pattern"].endswith("$")


def test_time_filters_are_published_as_rfc3339_date_times(schema):
    for path, names in (("/api/v1/alerts", {"since"}), ("/api/v1/devices/{device_id}/readings", {"since", "until"})):
        for param in schema["paths"][path]["get"]["parameters"]:
            if param["name"] in names:
                assert {"type": "string", "format": "date-time"} in param["schema"]["anyOf"]
