"""Event time for the simulators: the recent past replayed faster than real time, never ahead of it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

# Below this lag behind the wall clock the replay counts as live.
_CAUGHT_UP_S = 1.0


class Clock(Protocol):
    """What the fleet shell asks of a clock; tests hand in a fixed one."""

    @property
    def start(self) -> datetime: ...

    def now(self) -> datetime: ...

    def wall_now(self) -> datetime: ...

    def caught_up(self) -> bool: ...


def _utc(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


class AcceleratedClock:
    """Event time that starts `span_s` before now and runs `speed` times faster until it meets now.

    Ingest refuses readings more than 5 minutes ahead of its clock, so event time is capped at the
    wall clock; with speed 1 and span 0 this is plain real time.
    """

    def __init__(self, *, span_s: float, speed: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        if span_s < 0:
            raise ValueError(f"span_s must be 0 or more seconds, not {span_s}")
        if speed < 1:
            raise ValueError(f"speed must be 1 (real time) or more, not {speed}")
        self._wall = wall
        self._wall0 = wall()
        # Whole seconds keep reading timestamps round.
        self._start = math.floor(self._wall0 - span_s)
        self.speed = speed

    @property
    def start(self) -> datetime:
        return _utc(self._start)

    def _event_s(self, wall_s: float) -> float:
        return min(self._start + (wall_s - self._wall0) * self.speed, wall_s)

    def now(self) -> datetime:
        """The current event time."""
        return _utc(self._event_s(self._wall()))

    def wall_now(self) -> datetime:
        """The real time, for `sent_at`."""
        return _utc(self._wall())

    def caught_up(self) -> bool:
        """Whether the replay has reached the present and now runs in real time."""
        wall_s = self._wall()
        return wall_s - self._event_s(wall_s) < _CAUGHT_UP_S
