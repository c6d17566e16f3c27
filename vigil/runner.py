"""`vigil run`: every service as a child process, supervised, stopped cleanly on SIGINT/SIGTERM.

Children are separate processes so a crash or a `kill -9` of one does not take the others down;
the supervisor restarts a child that dies on its own, with a growing pause between restarts.

Ingest and the stream worker may run as several copies (`vigil run --ingest N --workers N`):
ingest processes share the broker's subscription, stream workers share the telemetry partitions.
Copies on one host must not share what names them to the broker (ingest's session) nor what they
listen on (metrics ports), so each copy is started with its own (`copy_env`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vigil.settings import Settings, get_settings

log = logging.getLogger(__name__)

SERVICES: dict[str, list[str]] = {
    "ingest": [sys.executable, "-m", "ingest"],
    "streams": [sys.executable, "-m", "streams"],
    "api": [sys.executable, "-m", "api"],
    "scheduler": [sys.executable, "-m", "scheduler"],
    "claims": [sys.executable, "-m", "claims_bridge"],
}
# The services that may run as several copies side by side.
SCALABLE = ("ingest", "streams")
# The port setting each service listens on.
_PORT_SETTING = {"ingest": "ingest_metrics_port", "streams": "streams_metrics_port", "api": "api_port",
                 "scheduler": "scheduler_metrics_port", "claims": "claims_metrics_port"}
# Copy k (k = 1 for the second) listens on its service's configured metrics port + k x this: ingest
# on 9101, 9111, 9121, ..., stream workers on 9102, 9112, ..., clear of 9103 and 9104.
METRICS_PORT_STRIDE = 10
_STOP_GRACE_S = 20


def copy_env(service: str, index: int, settings: Settings) -> dict[str, str]:
    """The environment that tells copy `index` (0 for the first) of `service` from its siblings.

    The first copy keeps the configured values, so a single copy runs exactly as it always has and
    ingest keeps its broker session (and what the broker queued in it). A port of 0 stays 0.
    """
    if service not in SCALABLE:
        raise ValueError(f"{service} runs as one copy only; {' and '.join(SCALABLE)} can run as several")
    if index == 0:
        return {}
    attr = _PORT_SETTING[service]
    port = getattr(settings, attr)
    env = {_alias(attr): str(port + METRICS_PORT_STRIDE * index if port else 0)}
    if service == "ingest":
        env[_alias("ingest_instance")] = f"{settings.ingest_instance}-{index + 1}"
    return env


def _alias(attr: str) -> str:
    return Settings.model_fields[attr].alias or attr


@dataclass
class _Child:
    name: str  # the service's name, or `<service>-<n>` for one of several copies
    service: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # on top of the supervisor's own environment
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


def _plan(names: list[str], copies: Mapping[str, int], settings: Settings | None) -> list[_Child]:
    """One child per service, or per copy of a service that runs as several."""
    unknown = set(names) - set(SERVICES)
    if unknown:
        raise ValueError(f"unknown service(s) {sorted(unknown)}; choose from {sorted(SERVICES)}")
    for service, count in copies.items():
        if count < 1:
            raise ValueError(f"{service} would run as {count} copies; at least one is needed")
        if count > 1 and service not in SCALABLE:
            raise ValueError(f"{service} runs as one copy only; {' and '.join(SCALABLE)} can run as several")
    if all(copies.get(name, 1) == 1 for name in names):
        return [_Child(name, name, SERVICES[name]) for name in names]
    settings = settings or get_settings()
    children = []
    for name in names:
        count = copies.get(name, 1)
        if count == 1:
            children.append(_Child(name, name, SERVICES[name]))
        else:
            children += [_Child(f"{name}-{i + 1}", name, SERVICES[name], copy_env(name, i, settings))
                         for i in range(count)]
    _refuse_shared_ports(children, settings)
    return children


def _refuse_shared_ports(children: list[_Child], settings: Settings) -> None:
    """Two children told to listen on one port: the second would die at start-up, again and again."""
    owners: dict[int, str] = {}
    for child in children:
        attr = _PORT_SETTING.get(child.service)
        if attr is None:
            continue
        port = int(child.env.get(_alias(attr), getattr(settings, attr)))
        if port and port in owners:
            raise ValueError(f"{child.name} and {owners[port]} would both listen on port {port}: set the "
                             f"services' ports at least {METRICS_PORT_STRIDE} x the copies apart")
        owners[port] = child.name


class Supervisor:
    """Starts the chosen services and keeps them running until `stop()`."""

    def __init__(self, names: list[str], log_dir: Path | None = None, *, copies: Mapping[str, int] | None = None,
                 settings: Settings | None = None) -> None:
        # copies: how many of a service run (one when not given). Several copies are told apart
        # from the settings, read from the environment when not given.
        self._children = _plan(names, copies or {}, settings)
        # None: children write to this terminal; a folder: one log file per child.
        self._log_dir = log_dir
        self._stopping = threading.Event()

    def _start(self, child: _Child) -> None:
        env = {**os.environ, **child.env} if child.env else None
        if self._log_dir is None:
            child.proc = subprocess.Popen(child.argv, env=env)
        else:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            with open(self._log_dir / f"{child.name}.log", "ab") as out:
                child.proc = subprocess.Popen(child.argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def start(self) -> None:
        for child in self._children:
            self._start(child)

    def pids(self) -> dict[str, int]:
        """Each started child's pid by child name: `streams`, or `streams-1`, `streams-2`, ..."""
        return {c.name: c.proc.pid for c in self._children if c.proc is not None}

    def service_pids(self) -> dict[str, list[int]]:
        """The pids of every copy of each service."""
        found: dict[str, list[int]] = {}
        for child in self._children:
            if child.proc is not None:
                found.setdefault(child.service, []).append(child.proc.pid)
        return found

    def watch(self) -> None:
        """Block until stopped, restarting children that exit on their own."""
        while not self._stopping.wait(0.5):
            for child in self._children:
                if child.proc is None or child.proc.poll() is None:
                    continue
                code = child.proc.returncode
                # A child that ran for a while earns a fresh restart budget.
                if time.monotonic() - child.started_at > 60:
                    child.restarts = 0
                pause = min(2 ** child.restarts, 30)
                log.warning("%s exited with %s; restarting in %d s", child.name, code, pause)
                if self._stopping.wait(pause):
                    return
                child.restarts += 1
                self._start(child)

    def request_stop(self) -> None:
        """Safe from a signal handler: makes `watch()` return."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        for child in self._children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S
        for child in self._children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %d s; killing it", child.name, _STOP_GRACE_S)
                child.proc.kill()
                child.proc.wait()


def run_foreground(names: list[str], copies: Mapping[str, int] | None = None) -> None:
    """Run until SIGINT or SIGTERM, then stop every child."""
    supervisor = Supervisor(names, copies=copies)

    def on_signal(signum, _frame) -> None:
        log.info("received signal %d; stopping", signum)
        supervisor.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor.start()
    supervisor.watch()
    supervisor.stop()
