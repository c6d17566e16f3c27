"""The `vigil` command as a user types it, against a real PostgreSQL with a database of its own."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from typer.testing import CliRunner

from vigil.cli import app
from vigil.settings import get_settings
from vigil.storage.schema import ensure_database, migrate

pytestmark = pytest.mark.infra

# The server the rest of the suite uses (tests/conftest.py), with a database of this module's own.
DATABASE_URL = urlunparse(
    urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil"))._replace(
        path="/vigil_cli_test"
    )
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """The CLI reads settings once per process; each invocation here brings its own environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _drop_database() -> None:
    with psycopg.connect(make_conninfo(DATABASE_URL, dbname="postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'vigil_cli_test'")
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier("vigil_cli_test")))


@pytest.fixture
def database() -> Iterator[str]:
    _drop_database()
    ensure_database(DATABASE_URL)
    migrate(DATABASE_URL, retention_days=30)
    try:
        yield DATABASE_URL
    finally:
        _drop_database()


def _words(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0, result.output
    commands_panel = result.output.split("Commands", 1)[1]
    # Each command starts a row of the panel; its help text may wrap onto indented rows.
    listed = {row.split()[1] for row in commands_panel.splitlines() if row.startswith("│ ") and row[2] != " "}
    assert {"stack", "run", "demo", "simulate", "token", "migrate"} <= listed


def test_a_care_manager_token_needs_the_care_manager_id():
    result = runner.invoke(app, ["token", "create", "--role", "care_manager"], env={"DATABASE_URL": DATABASE_URL})

    assert result.exit_code == 2
    assert "--care-manager is required" in _words(result.output)


def test_an_admin_token_is_printed_and_only_its_digest_is_stored(database: str):
    result = runner.invoke(app, ["token", "create", "--role", "admin"], env={"DATABASE_URL": database})

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("vgl_")
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT token_sha256, role, care_manager_id FROM api_tokens").fetchall()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), "admin", None)]


@pytest.mark.parametrize("command", [
    ["stack", "status"],
    ["migrate"],
    ["token", "create", "--role", "admin"],
    ["run", "--only", "api"],
])
def test_a_bad_setting_stops_any_command_with_a_sentence_naming_it(command: list[str]):
    result = runner.invoke(app, command, env={"VIGIL_API_PORT": "abc", "DATABASE_URL": DATABASE_URL})

    assert result.exit_code == 2, result.output
    assert "Configuration error: VIGIL_API_PORT='abc' is not usable" in _words(result.output)


def test_run_refuses_an_unknown_service_by_name():
    result = runner.invoke(app, ["run", "--only", "api,nope"], env={"DATABASE_URL": DATABASE_URL})

    assert result.exit_code == 2
    assert "nope" in result.output
