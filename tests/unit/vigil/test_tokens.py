"""Token lifetimes and refusals as pure decisions: the duration syntax, and why a token is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.tokens import StoredToken, parse_lifetime, refusal, token_state

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "lifetime"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        (" 1d ", timedelta(days=1)),
        ("3650d", timedelta(days=3650)),
    ],
)
def test_a_lifetime_is_a_number_and_a_unit(text: str, lifetime: timedelta) -> None:
    assert parse_lifetime(text) == lifetime


@pytest.mark.parametrize("text", ["30", "d", "0d", "-1d", "1.5d", "30 days", "1y", "3651d", "1d12h", "", "٣d"])
def test_anything_else_is_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"30d|at most 3650d"):
        parse_lifetime(text)


def stored(**overrides: object) -> StoredToken:
    fields = {
        "id": "tok_1", "role": "admin", "care_manager_id": None, "expires_at": None, "revoked_at": None,
        "checked_at": NOW,
    }
    return StoredToken(**(fields | overrides))


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "unknown"),
        (stored(revoked_at=NOW - timedelta(days=1)), "revoked"),
        (stored(revoked_at=NOW, expires_at=NOW - timedelta(days=1)), "revoked"),
        (stored(expires_at=NOW), "expired"),
        (stored(expires_at=NOW - timedelta(seconds=1)), "expired"),
        (stored(role="care_manager"), "names no care manager"),
    ],
)
def test_a_token_is_refused_with_its_reason(token: StoredToken | None, reason: str) -> None:
    assert reason in (refusal(token) or "")


@pytest.mark.parametrize(
    "token",
    [
        stored(),
        stored(expires_at=NOW + timedelta(seconds=1)),
        stored(role="care_manager", care_manager_id="cm-1", expires_at=NOW + timedelta(days=30)),
    ],
)
def test_a_live_token_is_accepted(token: StoredToken) -> None:
    assert refusal(token) is None


@pytest.mark.parametrize(
    ("expires_at", "revoked_at", "state"),
    [
        (None, None, "active"),
        (NOW + timedelta(hours=1), None, "active"),
        (NOW, None, "expired"),
        (NOW + timedelta(hours=1), NOW, "revoked"),
    ],
)
def test_the_state_token_list_shows(expires_at, revoked_at, state: str) -> None:
    assert token_state({"expires_at": expires_at, "revoked_at": revoked_at}, NOW) == state
