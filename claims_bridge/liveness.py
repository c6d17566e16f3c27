"""The bridge's liveness file: stamped while every worker goes on completing rounds.

The container healthcheck reads the file's age (docker-compose.yml), so a bridge with a worker that
stopped, or that cannot reach the database or Kafka, shows as unhealthy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

ALIVE_FILE = "claims.alive"
# A worker that completed no round for this long holds the stamp back (its rounds come every second or so).
FRESH_S = 30.0
# The file's modification time is all that is read; touching it more often tells nothing more.
STAMP_EVERY_S = 5.0


class Liveness:
    """Records each worker's completed rounds and stamps the file while all of them are recent."""

    def __init__(self, state_dir: Path, workers: Iterable[str]) -> None:
        self._path = state_dir / ALIVE_FILE
        self._last = dict.fromkeys(workers, float("-inf"))
        self._stamped = float("-inf")

    def beat(self, worker: str) -> Callable[[], None]:
        """The callback `worker` calls after each round that did its work."""
        if worker not in self._last:
            raise ValueError(f"unknown worker {worker!r}")

        def done() -> None:
            self._round_done(worker)

        return done

    def _round_done(self, worker: str) -> None:
        now = time.monotonic()
        self._last[worker] = now
        if now - self._stamped < STAMP_EVERY_S or any(now - last > FRESH_S for last in self._last.values()):
            return
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.touch()
            self._stamped = now
        except OSError as e:
            log.warning("cannot stamp %s: %s", self._path, e)
