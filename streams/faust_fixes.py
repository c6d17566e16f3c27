"""Two corrections to faust-streaming 0.15.3's offset bookkeeping, without which a restarted or
rebalanced worker can commit past records it never processed.

Seen here as lost telemetry after a stream worker was killed and restarted mid-stream: the new
worker's consumer drops records fetched while its flow is suspended (during the rebalance and
table recovery), and then

1. `Consumer._new_offset` lets the commit jump over a single missing offset at the head of the
   acknowledged list: it compares `min(acked) - committed > 1`, but `committed` is already the
   next offset to read, so any difference above 0 is a hole;
2. `Consumer._drain_messages` records a jump in fetched offsets as a "gap" (meant for compacted
   topics and transaction markers, which Vigil's telemetry never has) and commits it as if it had
   been processed.

With both corrected, a record that was not processed is never committed: at worst it is read
again after the next rebalance or restart, which the idempotent sinks absorb.
"""

from __future__ import annotations

from typing import Any

from faust.transport.consumer import Consumer

_original_new_offset = Consumer._new_offset


def _new_offset(self: Consumer, tp: Any) -> int | None:
    acked = self._acked[tp]
    committed = self._committed_offset[tp]
    if acked and committed is not None and min(acked) > committed:
        return None  # the next record to commit has not been acknowledged yet
    return _original_new_offset(self, tp)


async def _no_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
    return None


def apply() -> None:
    """Install the corrections; idempotent."""
    Consumer._new_offset = _new_offset
    Consumer._add_gap = _no_gap
