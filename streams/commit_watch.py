"""A guard against a commit that can no longer move: records skipped inside the consumer.

Offsets are committed only up to the first record not yet acknowledged (`faust_fixes`), so a
record that the consumer read but never handed to an agent leaves a hole the commit stops at while
later records are processed. Such a record would otherwise wait for the next restart, and the
readings it carries would stay out of the database and out of detection until then. The worker
checks for a hole that outlives any batch (a batch waiting on the database acknowledges nothing,
so it leaves no hole) and then exits, to be restarted and read again from the committed offsets.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import faust

from streams.metrics import COMMIT_HOLES

log = logging.getLogger(__name__)
CHECK_EVERY_S = 10.0
HOLE_TOLERANCE_S = 60.0
_EXIT_STALLED = 75


def holes(acked: Mapping[Any, Sequence[int]], committed: Mapping[Any, int | None]) -> set[Any]:
    """Partitions whose next record to commit is missing while later ones were acknowledged."""
    return {tp for tp, offsets in acked.items()
            if offsets and committed.get(tp) is not None and min(offsets) > committed[tp]}


class HoleWatch:
    """Since when each partition has had a hole; which ones have had it for too long."""

    def __init__(self, tolerance_s: float = HOLE_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._since: dict[Any, float] = {}

    def stalled(self, current: set[Any], now: float) -> set[Any]:
        self._since = {tp: self._since.get(tp, now) for tp in current}
        return {tp for tp, since in self._since.items() if now - since >= self.tolerance_s}


def add_commit_watch(app: faust.App) -> None:
    """Check the consumer's bookkeeping every few seconds; exit when a hole outlives the tolerance."""
    watch = HoleWatch()

    @app.timer(interval=CHECK_EVERY_S)
    async def watch_commits() -> None:
        consumer = app.consumer
        current = holes(consumer._acked, consumer._committed_offset)
        for tp in current:
            COMMIT_HOLES.inc()
            log.warning("offset %s of %s is not acknowledged while later ones are",
                        consumer._committed_offset[tp], tp)
        stalled = watch.stalled(current, time.monotonic())
        if stalled:
            log.critical("records skipped inside the consumer on %s; exiting to read them again",
                         sorted(map(str, stalled)))
            os._exit(_EXIT_STALLED)
