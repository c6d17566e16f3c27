"""The `vigil` command as a user types it, against a real PostgreSQL with a database of its own."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta
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

# The server the rest of the suite uses (tests/conftest.py), with a database of this module's own, named
# after the suite's so that checkouts testing side by side do not share it.
_SUITE_URL = urlparse(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/vigil"))
DATABASE_NAME = f"{_SUITE_URL.path.lstrip('/')}_cli"
DATABASE_URL = urlunparse(_SUITE_URL._replace(path=f"/{DATABASE_NAME}"))

runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """The CLI reads settings once per process; each invocation here brings its own environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _drop_database() -> None:
    with psycopg.connect(make_conninfo(DATABASE_URL, dbname="postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE_NAME,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(DATABASE_NAME)))


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


@pytest.mark.parametrize(("args", "env"), [(["--ingest", "2"], {}), ([], {"VIGIL_INGEST_PROCESSES": "2"})],
                         ids=["option", "environment"])
def test_run_refuses_ingest_copies_that_would_listen_on_the_stream_workers_port(args: list[str], env: dict):
    second_ingest_port = int(os.environ["VIGIL_INGEST_METRICS_PORT"]) + 10
    result = runner.invoke(app, ["run", "--only", "ingest,streams", *args],
                           env={"DATABASE_URL": DATABASE_URL, "VIGIL_STREAMS_METRICS_PORT": str(second_ingest_port),
                                **env})

    assert result.exit_code == 2, result.output
    assert f"streams and ingest-2 would both listen on port {second_ingest_port}" in _words(result.output)


def test_run_needs_at_least_one_worker():
    result = runner.invoke(app, ["run", "--only", "streams", "--workers", "0"], env={"DATABASE_URL": DATABASE_URL})

    assert result.exit_code == 2
    assert "--workers" in result.output


# --- token lifetimes and revocation -------------------------------------------------------------------


def _create(database: str, *args: str):
    return runner.invoke(app, ["token", "create", "--role", "admin", *args], env={"DATABASE_URL": database})


def _token_row(database: str, token: str) -> tuple:
    with psycopg.connect(database) as conn:
        return conn.execute(
            "SELECT id, expires_at - created_at, revoked_at FROM api_tokens WHERE token_sha256 = %s",
            (hashlib.sha256(token.encode()).hexdigest(),),
        ).fetchone()


def test_a_token_created_with_a_lifetime_expires_and_its_id_goes_to_stderr(database: str):
    result = _create(database, "--expires-in", "30d")

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    token_id, lifetime, revoked_at = _token_row(database, token)
    assert lifetime == timedelta(days=30)
    assert revoked_at is None
    assert f"id {token_id} (expires " in _words(result.stderr)
    assert token_id not in result.stdout


def test_a_token_created_without_a_lifetime_never_expires(database: str):
    result = _create(database)

    assert result.exit_code == 0, result.output
    assert _token_row(database, result.stdout.strip())[1] is None
    assert "never expires" in _words(result.stderr)


@pytest.mark.parametrize("lifetime", ["30", "1y", "0d", "soon", "9999d"])
def test_a_lifetime_it_cannot_read_is_refused_before_anything_is_stored(database: str, lifetime: str):
    result = _create(database, "--expires-in", lifetime)

    assert result.exit_code == 2
    assert "--expires-in" in _words(result.output)
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM api_tokens").fetchone() == (0,)


@pytest.mark.parametrize("by", ["id", "token"])
def test_a_token_is_revoked_by_its_id_or_by_itself(database: str, by: str):
    token = _create(database, "--expires-in", "1w").stdout.strip()
    token_id = _token_row(database, token)[0]

    result = runner.invoke(app, ["token", "revoke", token_id if by == "id" else token], env={"DATABASE_URL": database})

    assert result.exit_code == 0, result.output
    assert f"revoked {token_id}" in _words(result.stdout)
    assert _token_row(database, token)[2] is not None
    assert token not in result.output


def test_revoking_an_unknown_token_fails_without_echoing_it(database: str):
    result = runner.invoke(app, ["token", "revoke", "vgl_secret-pasted-by-mistake"], env={"DATABASE_URL": database})

    assert result.exit_code == 1
    assert "no API token" in _words(result.output)
    assert "secret-pasted" not in result.output


def test_token_list_shows_ids_and_states_but_no_secrets(database: str):
    kept = _create(database).stdout.strip()
    gone = _create(database, "--expires-in", "2w").stdout.strip()
    runner.invoke(app, ["token", "revoke", gone], env={"DATABASE_URL": database})

    result = runner.invoke(app, ["token", "list"], env={"DATABASE_URL": database})

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("tok_")}
    assert set(rows) == {_token_row(database, kept)[0], _token_row(database, gone)[0]}
    assert "active" in rows[_token_row(database, kept)[0]] and "never" in rows[_token_row(database, kept)[0]]
    assert "revoked" in rows[_token_row(database, gone)[0]]
    for token in (kept, gone):
        assert token not in result.output
        assert hashlib.sha256(token.encode()).hexdigest() not in result.output
