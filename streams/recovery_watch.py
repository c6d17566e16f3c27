"""A guard against a table recovery that has stopped moving.

After every rebalance the worker reads its device states back from the changelog before it judges
anything (Faust's recovery). If the records the recovery waits for never arrive, it waits for good:
no telemetry partition is resumed, so nothing is stored or judged, and no commit is due, so the
commit watch sees no hole. Faust only logs "No event received for active tp" every few seconds.
The one cause seen here, changelog records fetched and dropped while their partition was paused,
is corrected in `streams.faust_fixes` (fix 6); this guard stays for any other.

A recovery that still has records to read and has read none for `STALL_TOLERANCE_S` makes the
worker exit, to be restarted and recover afresh. Recovering 100,000 devices took 18 s here, so two
minutes without a single record is no slow start. A Kafka outage that long trips it too; a restart
then costs nothing more than the wait.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import faust

from streams.metrics import RECOVERY_REMAINING

log = logging.getLogger(__name__)
CHECK_EVERY_S = 10.0
STALL_TOLERANCE_S = 120.0


class ProgressWatch:
    """Since when the recovery's count of records still to read has stood still."""

    def __init__(self, tolerance_s: float = STALL_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self._last: int | None = None
        self._since = 0.0

    def stalled(self, remaining: int | None, now: float) -> bool:
        """True once `remaining` (None: not recovering) has been the same, above 0, for the tolerance."""
        if remaining is None or remaining <= 0 or remaining != self._last:
            self._last, self._since = remaining, now
            return False
        return now - self._since >= self.tolerance_s


def remaining(recovery: Any) -> int | None:
    """Records the active recovery still has to read, or None when the worker is not recovering."""
    return int(recovery.active_remaining_total()) if recovery.in_recovery else None


def add_recovery_watch(app: faust.App) -> None:
    """Check the recovery every few seconds from the first assignment on; exit when it stops moving.

    Faust starts timers only once the first recovery has completed, which is the one a restarted
    worker is most likely to spend in, so the watch is started by the first assignment instead.
    """
    watch = ProgressWatch()
    started = False

    async def start(sender: Any, *_: Any, **__: Any) -> None:
        nonlocal started
        if not started:
            started = True
            app.add_future(_watch(app, watch))

    app.on_partitions_assigned.connect(start)


async def _watch(app: faust.App, watch: ProgressWatch) -> None:
    log.info("watching table recoveries: one that reads nothing for %d s stops the worker", watch.tolerance_s)
    while True:
        await asyncio.sleep(CHECK_EVERY_S)
        stuck = check(app.tables.recovery, watch, time.monotonic())
        if stuck is not None:
            log.critical("the table recovery has read nothing for %d s with %d changelog records still to "
                         "read; exiting so that a restart recovers afresh", watch.tolerance_s, stuck)
            os._exit(os.EX_TEMPFAIL)  # 75: try again


def check(recovery: Any, watch: ProgressWatch, now: float) -> int | None:
    """One look at the recovery: the records still to read if it has stalled, else None."""
    try:
        left = remaining(recovery)
    except Exception:  # a recovery between two states; the next look sees it settled
        log.warning("could not read the recovery's progress", exc_info=True)
        return None
    RECOVERY_REMAINING.set(left or 0)
    return left if watch.stalled(left, now) else None
