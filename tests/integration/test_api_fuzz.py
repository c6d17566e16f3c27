"""Schemathesis against the API in-process, with an admin token and a real PostgreSQL: whatever it sends,
valid or not, the answer is never a 500 and always one the published schema declares, body included.

Not checked: "schema-valid request rejected". Some refusals cannot be said in a schema (a member that
does not exist, an unknown IANA zone, a care-plan parameter the rule does not have) and are 422s by
design. Generated members and devices pile up in this module's own database, dropped at the next run.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from urllib.parse import urlparse, urlunparse

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from tests.integration.databases import recreate
from vigil.settings import Settings
from vigil.storage.schema import migrate

pytestmark = pytest.mark.infra

_SUITE_URL = urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil"))
DATABASE_NAME = f"{_SUITE_URL.path.lstrip('/')}_fuzz"
DATABASE_URL = urlunparse(_SUITE_URL._replace(path=f"/{DATABASE_NAME}"))
ADMIN_TOKEN = "fuzz-admin-token-0123456789abcdef"
# Enough to find what the first run found (500s on NUL, undeclared statuses, wrong 422 bodies) in well
# under a minute for the whole API on one core.
EXAMPLES_PER_OPERATION = 60
# Statuses answered, by operation, for the check that the cases reached the handlers.
ANSWERS: dict[str, Counter[int]] = defaultdict(Counter)


class _Accounts:
    """The broker's side of registration; its real behaviour is tested against Mosquitto elsewhere."""

    def ensure_device(self, device_id: str, password: str) -> str:
        return device_id

    def ensure_gateway(self, gateway_id: str, device_ids: list[str], password: str) -> str:
        return f"gw.{gateway_id}"


class _CarePlans:
    async def publish(self, event: object) -> None:
        return None


SETTINGS = Settings(_env_file=None, DATABASE_URL=DATABASE_URL, VIGIL_ADMIN_TOKEN=ADMIN_TOKEN)
APP = create_app(SETTINGS, _Accounts(), care_plans=_CarePlans())
# Read at import for pytest to list the operations, from the app's own schema rather than over ASGI, so the
# app (its database pool) starts at the first case, once `fresh_database` made the database.
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
# Given as configuration, not per call, so that a case generated without the header is sent without it.
schema.config.update(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.fixture(scope="module", autouse=True)
def fresh_database() -> None:
    recreate(DATABASE_URL)
    migrate(DATABASE_URL, retention_days=30)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,  # the same cases every run, so CI cannot pass and fail on one commit
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_input_gets_a_500_or_an_answer_the_schema_does_not_declare(case: schemathesis.Case) -> None:
    response = case.call_and_validate(excluded_checks=[positive_data_acceptance])
    ANSWERS[f"{case.operation.method.upper()} {case.operation.path}"][response.status_code] += 1


def test_the_cases_got_past_authentication_to_the_handlers() -> None:
    # Without this, a token schemathesis failed to send would pass every case above on its 401.
    assert len(ANSWERS) == len(list(schema.get_all_operations()))
    for operation, statuses in ANSWERS.items():
        assert set(statuses) - {401}, f"{operation}: {dict(statuses)}"
