"""The supervisor behind `vigil run`, over real child processes.

The children are tiny Python sleepers standing in for ingest, streams and the API: what is under
test is the supervision (restart, stop, signals, reaping), not the services.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.support import wait_for
from vigil import runner
from vigil.runner import Supervisor, copy_env
from vigil.settings import Settings

pytestmark = pytest.mark.infra

# Announces itself by creating a file named after its pid in the folder given as argv[1], once
# its signal disposition is set, so a test never signals a child that is still starting.
SLEEPER = """
import os, pathlib, signal, sys, time
if sys.argv[2] == "ignore-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1], str(os.getpid())).touch()
time.sleep(600)
"""


def sleeper(folder: Path, *, ignore_sigterm: bool = False) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-c", SLEEPER, str(folder), "ignore-sigterm" if ignore_sigterm else "obey"]


# A sleeper that writes what tells it from its siblings into its announcement.
TELLING_SLEEPER = """
import json, os, pathlib, sys, time
keys = ("VIGIL_INGEST_INSTANCE", "VIGIL_INGEST_METRICS_PORT", "VIGIL_STREAMS_METRICS_PORT")
pathlib.Path(sys.argv[1], str(os.getpid())).write_text(json.dumps({k: os.environ.get(k) for k in keys}))
time.sleep(600)
"""


def telling_sleeper(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-c", TELLING_SLEEPER, str(folder)]


def told(folder: Path) -> dict[int, dict]:
    """What each started child said of itself, by pid (a child still writing is left out)."""
    found = {}
    for path in folder.iterdir():
        with contextlib.suppress(json.JSONDecodeError):
            found[int(path.name)] = json.loads(path.read_text())
    return found


def started_pids(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir()) if folder.exists() else []


def alive(pid: int) -> bool:
    """True while the process exists, zombie or not: a zombie means nobody reaped it."""
    return Path(f"/proc/{pid}").exists()


def kill_leftovers(*folders: Path, supervisor: Supervisor | None = None) -> None:
    """SIGKILL whatever a failed test left running: announced children and the supervisor's own."""
    pids = {pid for folder in folders for pid in started_pids(folder)}
    pids |= set(supervisor.pids().values()) if supervisor else set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def watched() -> Iterator[Callable[[Supervisor], None]]:
    """Supervisors whose `watch()` runs in a thread; stopped the way `run_foreground` stops them."""
    running: list[tuple[Supervisor, threading.Thread]] = []

    def watch(supervisor: Supervisor) -> None:
        thread = threading.Thread(target=supervisor.watch, daemon=True)
        thread.start()
        running.append((supervisor, thread))

    yield watch
    for supervisor, thread in running:
        supervisor.request_stop()
        thread.join(10)
        supervisor.stop()


def test_an_unknown_service_name_is_refused_by_name():
    with pytest.raises(ValueError, match="nope"):
        Supervisor(["ingest", "nope"])


def test_a_child_killed_with_sigkill_is_restarted_under_a_new_pid(monkeypatch, tmp_path: Path, watched):
    announced = tmp_path / "sleeper"
    monkeypatch.setattr(runner, "SERVICES", {"sleeper": sleeper(announced)})
    supervisor = Supervisor(["sleeper"], log_dir=tmp_path / "logs")
    try:
        supervisor.start()
        watched(supervisor)
        [first] = wait_for(lambda: started_pids(announced), 10, what="the child to start")

        os.kill(first, signal.SIGKILL)

        wait_for(lambda: len(started_pids(announced)) == 2, 10, what="the child to be restarted")
        second = supervisor.pids()["sleeper"]
        assert second != first
        assert started_pids(announced) == sorted([first, second])
        assert alive(second)
        assert not alive(first), "the killed child was left a zombie"
    finally:
        kill_leftovers(announced, supervisor=supervisor)


def test_stop_terminates_children_and_kills_one_that_ignores_sigterm_after_the_grace(
        monkeypatch, tmp_path: Path, caplog):
    polite, stubborn = tmp_path / "polite", tmp_path / "stubborn"
    monkeypatch.setattr(runner, "SERVICES", {"polite": sleeper(polite),
                                             "stubborn": sleeper(stubborn, ignore_sigterm=True)})
    monkeypatch.setattr(runner, "_STOP_GRACE_S", 1)
    supervisor = Supervisor(["polite", "stubborn"], log_dir=tmp_path / "logs")
    try:
        supervisor.start()
        wait_for(lambda: started_pids(polite) and started_pids(stubborn), 10, what="both children to start")
        pids = supervisor.pids()

        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="vigil.runner"):
            supervisor.stop()
        took = time.monotonic() - began

        assert 1 <= took < 5
        assert not alive(pids["polite"])
        assert not alive(pids["stubborn"])
        killed = [r.getMessage() for r in caplog.records if "killing it" in r.getMessage()]
        assert len(killed) == 1
        assert killed[0].startswith("stubborn ")
    finally:
        kill_leftovers(polite, stubborn, supervisor=supervisor)


# `vigil run` itself cannot be handed stand-in services, so this is `run_foreground` in a process
# of its own, with the services replaced before it starts.
FOREGROUND = """
import json, sys
from vigil import runner
runner.SERVICES = json.loads(sys.argv[1])
runner.run_foreground(sorted(runner.SERVICES))
"""


def test_run_foreground_stops_its_children_and_exits_0_on_sigterm(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    services = {"first": sleeper(first), "second": sleeper(second)}
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", FOREGROUND, json.dumps(services)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: started_pids(first) and started_pids(second), 15, what="both children to start")
        children = started_pids(first) + started_pids(second)

        proc.send_signal(signal.SIGTERM)

        assert proc.wait(15) == 0, (tmp_path / "run.log").read_text()
        assert [pid for pid in children if alive(pid)] == []
    finally:
        # Its own process group holds every child it started, announced or not.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- several copies of a service --------------------------------------------------------------------

SETTINGS = Settings(VIGIL_INGEST_INSTANCE="edge", VIGIL_INGEST_METRICS_PORT=9101, VIGIL_STREAMS_METRICS_PORT=9102,
                    VIGIL_SCHEDULER_METRICS_PORT=9103, VIGIL_CLAIMS_METRICS_PORT=9104, VIGIL_API_PORT=8080)


def test_the_first_copy_runs_as_a_single_one_and_later_copies_get_their_own_instance_and_ports():
    assert copy_env("ingest", 0, SETTINGS) == {}
    assert copy_env("ingest", 1, SETTINGS) == {"VIGIL_INGEST_INSTANCE": "edge-2", "VIGIL_INGEST_METRICS_PORT": "9111"}
    assert copy_env("ingest", 2, SETTINGS) == {"VIGIL_INGEST_INSTANCE": "edge-3", "VIGIL_INGEST_METRICS_PORT": "9121"}
    assert copy_env("streams", 0, SETTINGS) == {}
    assert copy_env("streams", 3, SETTINGS) == {"VIGIL_STREAMS_METRICS_PORT": "9132"}
    # A metrics port of 0 (any free one) stays 0 for every copy.
    assert copy_env("streams", 1, SETTINGS.model_copy(update={"streams_metrics_port": 0})) == {
        "VIGIL_STREAMS_METRICS_PORT": "0"}


@pytest.mark.parametrize("service", ["api", "scheduler", "claims"])
def test_only_ingest_and_the_stream_worker_run_as_several_copies(service: str):
    with pytest.raises(ValueError, match=f"{service} runs as one copy only"):
        Supervisor([service], copies={service: 2}, settings=SETTINGS)


def test_copies_that_would_listen_on_one_port_are_refused_before_anything_starts():
    # The second ingest would take 9101 + 10, the stream worker's port.
    crowded = SETTINGS.model_copy(update={"streams_metrics_port": 9111})
    with pytest.raises(ValueError, match="ingest-2 and streams would both listen on port 9111"):
        Supervisor(["streams", "ingest"], copies={"ingest": 2}, settings=crowded)


def test_each_copy_gets_its_own_environment_log_file_and_restarts_on_its_own(monkeypatch, tmp_path: Path, watched):
    ingest, streams = tmp_path / "ingest", tmp_path / "streams"
    monkeypatch.setattr(runner, "SERVICES", {"ingest": telling_sleeper(ingest), "streams": telling_sleeper(streams),
                                             "api": sleeper(tmp_path / "api")})
    logs = tmp_path / "logs"
    supervisor = Supervisor(["ingest", "streams", "api"], log_dir=logs, copies={"ingest": 2, "streams": 3},
                            settings=SETTINGS)
    try:
        supervisor.start()
        watched(supervisor)
        wait_for(lambda: len(told(ingest)) == 2 and len(told(streams)) == 3, 10, what="every copy to start")
        pids = supervisor.pids()

        assert sorted(pids) == ["api", "ingest-1", "ingest-2", "streams-1", "streams-2", "streams-3"]
        assert sorted(p.name for p in logs.iterdir()) == sorted(f"{name}.log" for name in pids)
        assert sorted(supervisor.service_pids()["streams"]) == sorted(told(streams))
        by_child = {name: (told(ingest) | told(streams)).get(pid) for name, pid in pids.items() if name != "api"}
        # The first copy of each runs in the supervisor's own environment, as a single copy would.
        inherited = {key: os.environ.get(key) for key in by_child["ingest-1"]}
        assert by_child["ingest-1"] == by_child["streams-1"] == inherited
        assert by_child["ingest-2"]["VIGIL_INGEST_INSTANCE"] == "edge-2"
        assert by_child["ingest-2"]["VIGIL_INGEST_METRICS_PORT"] == "9111"
        assert [by_child[f"streams-{n}"]["VIGIL_STREAMS_METRICS_PORT"] for n in (2, 3)] == ["9112", "9122"]

        os.kill(pids["streams-2"], signal.SIGKILL)

        wait_for(lambda: len(told(streams)) == 4, 10, what="the killed copy to be restarted")
        after = supervisor.pids()
        assert after["streams-2"] != pids["streams-2"]
        assert {name: pid for name, pid in after.items() if name != "streams-2"} == {
            name: pid for name, pid in pids.items() if name != "streams-2"}, "only the killed copy is restarted"
        assert told(streams)[after["streams-2"]]["VIGIL_STREAMS_METRICS_PORT"] == "9112", "restarted as itself"
    finally:
        kill_leftovers(ingest, streams, tmp_path / "api", supervisor=supervisor)
