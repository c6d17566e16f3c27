"""How a caller is named in alert histories and the audit log."""

from __future__ import annotations

import pytest

from api.auth import Principal


@pytest.mark.parametrize(
    ("principal", "actor"),
    [
        (Principal("admin"), "admin:env"),
        (Principal("admin", token_id="tok_0123"), "admin:tok_0123"),
        (Principal("care_manager", "cm-1", token_id="tok_4567"), "care_manager:cm-1"),
    ],
)
def test_the_actor_names_the_care_manager_or_the_admin_token(principal: Principal, actor: str) -> None:
    assert principal.actor == actor
