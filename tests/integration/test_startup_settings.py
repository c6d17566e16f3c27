"""A ladder Vigil cannot use stops every service that reads it before it does anything, with a sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.settings import get_settings

BAD_LADDERS = [
    ('{"urgent": []}', "VIGIL_ESCALATION: severity 'urgent' is not one of critical, high, medium, low"),
    ('{"high": [{"to": "member"}]}', "after_s"),
    ("not json", "VIGIL_ESCALATION is not valid JSON"),
]


@pytest.mark.parametrize(("ladder", "sentence"), BAD_LADDERS)
@pytest.mark.parametrize("module", ["api", "scheduler"])
def test_a_service_refuses_to_start_on_a_bad_ladder(module: str, ladder: str, sentence: str) -> None:
    env = os.environ | {"VIGIL_ESCALATION": ladder}
    done = subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert f"VIGIL_ESCALATION={ladder!r} is not usable" in done.stderr
    assert sentence in done.stderr
    assert "Traceback" not in done.stderr


def test_vigil_run_refuses_a_bad_ladder_before_starting_anything() -> None:
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["run"], env={"VIGIL_ESCALATION": '{"low": "soon"}'})
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 2
    assert "VIGIL_ESCALATION" in result.output and "must be a list" in result.output
