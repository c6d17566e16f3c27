"""The API's pure rules: request shapes, error field names, token handling and who sees whom."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.auth import Principal
from api.errors import field_errors, field_name
from api.schemas import RESERVED_PREFIX, DeviceIn, GatewayIn, MemberIn
from vigil.broker_accounts import SERVICE_USERNAMES
from vigil.tokens import TOKEN_PREFIX, check_role, new_token, token_digest

MEMBER = {
    "name": "Grace",
    "timezone": "America/New_York",
    "policy": {"number": "P-9", "line": "health"},
    "consent": {"monitoring": True, "outreach": False, "auto_claims": False},
}


@pytest.mark.parametrize(
    ("loc", "name"),
    [
        (("body", "policy", "line"), "policy.line"),
        (("body", "emergency_contacts", 0, "phone"), "emergency_contacts.0.phone"),
        (("body",), "body"),
        (("body", 7), "body"),  # a JSON syntax error, located by character offset
        (("query", "limit"), "limit"),
        (("path", "device_id"), "device_id"),
        ((), "request"),
    ],
)
def test_an_error_location_becomes_a_field_name(loc: tuple, name: str) -> None:
    assert field_name(loc) == name


def test_validation_messages_lose_pydantics_prefix_but_keep_the_location() -> None:
    [error] = field_errors(
        [{"loc": ("body", "timezone"), "msg": "Value error, 'X' is not a zone", "type": "v"}]
    )
    assert error == {
        "field": "timezone",
        "message": "'X' is not a zone",
        "type": "v",
        "loc": ["body", "timezone"],
    }


def test_a_minimal_member_is_valid_with_defaults() -> None:
    member = MemberIn.model_validate(MEMBER)
    assert (member.id, member.emergency_contacts, member.care_plan, member.outreach_urls) == (
        None,
        [],
        {},
        [],
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Base"}, ("timezone",)),
        ({"timezone": "../../etc/passwd"}, ("timezone",)),
        ({"policy": {"number": "P", "line": "car"}}, ("policy", "line")),
        ({"consent": {"monitoring": 1, "outreach": False, "auto_claims": False}}, ("consent", "monitoring")),
        ({"email": "not-an-email"}, ("email",)),
        ({"outreach_urls": ["tgram://bot/chat", "plain words"]}, ("outreach_urls", 1)),
        ({"care_plan": "strict"}, ("care_plan",)),
        ({"name": ""}, ("name",)),
    ],
)
def test_a_member_field_that_does_not_fit_is_located(change: dict, field: tuple) -> None:
    with pytest.raises(ValidationError) as e:
        MemberIn.model_validate(MEMBER | change)
    assert [err["loc"] for err in e.value.errors()] == [field]


def test_ids_of_the_brokers_service_logins_are_reserved() -> None:
    for username in SERVICE_USERNAMES:
        assert username.startswith(RESERVED_PREFIX)
        with pytest.raises(ValidationError):
            DeviceIn.model_validate({"device_id": username, "kind": "home", "member_id": "m-1"})
        with pytest.raises(ValidationError):
            GatewayIn.model_validate({"id": username})


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({}, True),
        ({"device_id": "a" * 64}, True),
        ({"device_id": "a" * 65}, False),
        ({"device_id": "wb 1"}, False),
        ({"report_interval_s": -5}, False),
        ({"kind": "car"}, False),
    ],
)
def test_device_registration_shape(change: dict, valid: bool) -> None:
    body = {"device_id": "wb-1", "kind": "wearable", "member_id": "m-1"} | change
    if valid:
        assert DeviceIn.model_validate(body).report_interval_s == 300
    else:
        with pytest.raises(ValidationError):
            DeviceIn.model_validate(body)


def test_tokens_are_prefixed_random_and_stored_as_a_digest() -> None:
    first, second = new_token(), new_token()
    assert first.startswith(TOKEN_PREFIX) and first != second
    assert len(token_digest(first)) == 64 and token_digest(first) != first


@pytest.mark.parametrize(
    ("role", "care_manager_id", "ok"),
    [
        ("admin", None, True),
        ("care_manager", "cm-1", True),
        ("care_manager", None, False),
        ("admin", "cm-1", False),
        ("root", None, False),
    ],
)
def test_token_roles(role: str, care_manager_id: str | None, ok: bool) -> None:
    if ok:
        check_role(role, care_manager_id)
    else:
        with pytest.raises(ValueError):
            check_role(role, care_manager_id)


@pytest.mark.parametrize(
    ("principal", "member_care_manager", "visible"),
    [
        (Principal("admin"), None, True),
        (Principal("admin"), "cm-2", True),
        (Principal("care_manager", "cm-1"), "cm-1", True),
        (Principal("care_manager", "cm-1"), "cm-2", False),
        (Principal("care_manager", "cm-1"), None, False),
        (Principal("care_manager", None), None, False),  # a token without a care manager sees nobody
    ],
)
def test_who_sees_which_member(principal: Principal, member_care_manager: str | None, visible: bool) -> None:
    assert principal.may_see(member_care_manager) is visible
