"""Corrections to faust-streaming 0.15.3's offset bookkeeping and recovery, without which a
restarted or rebalanced worker can skip records it never processed.

Each was seen here as lost telemetry after a stream worker was killed and restarted mid-stream.

1. **Stream partitions resumed before the seek.** When a worker finishes table recovery
   (`Recovery.on_recovery_completed`, or `_resume_streams` when there was nothing to recover), it
   resumes the stream partitions, then seeks them to their committed offsets, then resumes flow
   control, which empties every stream's queue. The consumer's flow is already running (recovery
   started it to read the changelogs), so records fetched in between reach the agents' queues and
   move the consumer's read offset forward; emptying the queues then throws them away, and when
   the seek makes the consumer fetch them again they are dropped as already read. The commit stops
   at that hole (with fix 3) and the records are never processed until the next restart. The fix
   holds the stream partitions paused until the seek and the emptying are done.
2. **Gaps.** `Consumer._drain_messages` records a jump in fetched offsets as a "gap" (meant for
   compacted topics and transaction markers, which Vigil's telemetry never has) and commits it as
   if it had been processed.
3. **Head of the acknowledged list.** `Consumer._new_offset` lets the commit jump over a single
   missing offset at the head of the acknowledged list: it compares `min(acked) - committed > 1`,
   but `committed` is already the next offset to read, so any difference above 0 is a hole.

With these, a record that was not processed is never committed: at worst it is read again after
the next rebalance or restart, which the idempotent sinks absorb.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer

_original_new_offset = Consumer._new_offset
_PATCHED = "_vigil_resumes_after_seek"


def hole_at_head(acked: Sequence[int], committed: int | None) -> bool:
    """Whether the next offset to commit is unacknowledged while later ones are acknowledged."""
    return bool(acked) and committed is not None and min(acked) > committed


def _new_offset(self: Consumer, tp: Any) -> int | None:
    if hole_at_head(self._acked[tp], self._committed_offset[tp]):
        return None  # the next record to commit has not been acknowledged yet
    return _original_new_offset(self, tp)


async def _no_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
    return None


def _resume_partitions_last(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Run a Recovery step with the consumer's `resume_partitions` held back until it has finished.

    The step's own seek and queue emptying then happen while no stream record can arrive; if it
    ends early (another rebalance began), the partitions stay paused for the next recovery.
    """

    @functools.wraps(method)
    async def step(self: Recovery, *args: Any, **kwargs: Any) -> None:
        consumer = self.app.consumer
        held: list[Any] = []
        consumer.resume_partitions = held.append  # shadows the method for this step only
        try:
            await method(self, *args, **kwargs)
        finally:
            del consumer.resume_partitions
        for partitions in held:
            consumer.resume_partitions(partitions)

    setattr(step, _PATCHED, True)
    return step


def apply() -> None:
    """Install the corrections; idempotent."""
    Consumer._new_offset = _new_offset
    Consumer._add_gap = _no_gap
    for name in ("on_recovery_completed", "_resume_streams"):
        method = getattr(Recovery, name)
        if not getattr(method, _PATCHED, False):
            setattr(Recovery, name, _resume_partitions_last(method))
