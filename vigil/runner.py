"""`vigil run`: every service as a child process, supervised, stopped cleanly on SIGINT/SIGTERM.

Children are separate processes so a crash or a `kill -9` of one does not take the others down;
the supervisor restarts a child that dies on its own, with a growing pause between restarts.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

SERVICES: dict[str, list[str]] = {
    "ingest": [sys.executable, "-m", "ingest"],
    "streams": [sys.executable, "-m", "streams"],
    "api": [sys.executable, "-m", "api"],
    "scheduler": [sys.executable, "-m", "scheduler"],
    "claims": [sys.executable, "-m", "claims_bridge"],
}
_STOP_GRACE_S = 20


@dataclass
class _Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


class Supervisor:
    """Starts the chosen services and keeps them running until `stop()`."""

    def __init__(self, names: list[str], log_dir: Path | None = None) -> None:
        unknown = set(names) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown service(s) {sorted(unknown)}; choose from {sorted(SERVICES)}")
        self._children = [_Child(n, SERVICES[n]) for n in names]
        # None: children write to this terminal; a folder: one log file per service.
        self._log_dir = log_dir
        self._stopping = threading.Event()

    def _start(self, child: _Child) -> None:
        if self._log_dir is None:
            child.proc = subprocess.Popen(child.argv)
        else:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            with open(self._log_dir / f"{child.name}.log", "ab") as out:
                child.proc = subprocess.Popen(child.argv, stdout=out, stderr=subprocess.STDOUT)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def start(self) -> None:
        for child in self._children:
            self._start(child)

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self._children if c.proc is not None}

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


def run_foreground(names: list[str]) -> None:
    """Run until SIGINT or SIGTERM, then stop every child."""
    supervisor = Supervisor(names)

    def on_signal(signum, _frame) -> None:
        log.info("received signal %d; stopping", signum)
        supervisor.request_stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    supervisor.start()
    supervisor.watch()
    supervisor.stop()
