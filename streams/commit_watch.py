"""A guard against a commit that can no longer move: records skipped inside the consumer.

Offsets are committed only up to the first record not yet acknowledged (`faust_fixes`), so a
record that the consumer read but never handed to an agent leaves a hole the commit stops at while
later records are processed. Such a record would otherwise wait for the next restart, and the
readings it carries would stay out of the database and out of detection until then. The one
cause seen here, records dropped for a partition paused during their fetch, is corrected in
`streams.faust_fixes` (fix 6); this guard stays for any other.

A hole is also seen, briefly, while a commit is under way (Faust takes the offsets off its
acknowledged list before the broker answers), so only a hole at the same committed offset for
`HOLE_TOLERANCE_S` counts: then the worker exits, to be restarted and read again from the
committed offsets. A batch waiting on the database acknowledges nothing, so it leaves no hole; a
Kafka outage longer than the tolerance can also trip it, and a restart then costs nothing.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import faust

from streams.faust_fixes import hole_at_head
from streams.metrics import COMMIT_HOLES

log = logging.getLogger(__name__)
CHECK_EVERY_S = 10.0
HOLE_TOLERANCE_S = 120.0


def holes(acked: Mapping[Any, Sequence[int]], committed: Mapping[Any, int | None]) -> dict[Any, int]:
    """Partitions whose next record to commit is missing while later ones were acknowledged,
    with the committed offset they are stuck at."""
    return {tp: committed[tp] for tp, offsets in acked.items() if hole_at_head(offsets, committed.get(tp))}


class HoleWatch:
    """Since when each partition has shown a hole at the same committed offset."""

    def __init__(self, tolerance_s: float = HOLE_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._since: dict[tuple[Any, int], float] = {}

    def stalled(self, current: Mapping[Any, int], now: float) -> set[Any]:
        """The partitions stuck for at least the tolerance, given this check's holes."""
        self._since = {(tp, offset): self._since.get((tp, offset), now) for tp, offset in current.items()}
        return {tp for (tp, _), since in self._since.items() if now - since >= self.tolerance_s}


def add_commit_watch(app: faust.App) -> None:
    """Check the consumer's bookkeeping every few seconds; exit when a hole outlives the tolerance."""
    watch = HoleWatch()

    @app.timer(interval=CHECK_EVERY_S)
    async def watch_commits() -> None:
        consumer = app.consumer
        current = holes(consumer._acked, consumer._committed_offset)
        COMMIT_HOLES.inc(len(current))
        stalled = watch.stalled(current, time.monotonic())
        if stalled:
            log.critical("the commit of %s has not moved for %d s while later records were acknowledged; "
                         "exiting so that a restart reads again from the committed offsets",
                         sorted(map(str, stalled)), watch.tolerance_s)
            os._exit(os.EX_TEMPFAIL)  # 75: try again
