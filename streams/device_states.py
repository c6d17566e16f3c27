"""The detector state of the worker's devices: live in memory, written to the changelog once per commit.

Writing a device's whole state to the Faust table after every batch made one changelog record per
message at realistic rates (a batch rarely holds two messages of one device), and decoding and
encoding it each time cost more than judging the readings. Here the states being judged are kept
as objects; a device judged since the last commit is *dirty*, and `flush` writes each dirty state
once, as compact bytes (`vigil.rules.state_codec`), just before Faust commits offsets
(`streams.faust_fixes` calls it first thing in every commit, and Faust flushes the producer before
it commits).

The invariant this keeps: **an offset is committed only when the state written to the changelog
includes the judgement of every record before it.** Detection of a batch (judging, sending its
alert changes and incidents, marking the state dirty) and `flush` hold the same lock, so a flush
never writes a state halfway through a batch whose alerts are not yet on Kafka. The changelog may
be ahead of the offsets (a batch judged after the last commit, or a crash between the flush and the
commit); its records are then judged again against a state that has seen them, which drops readings
already buffered and sends no change twice (`vigil.rules.lateness`, `vigil.rules.announce`).

A rebalance (aiokafka revokes every partition, then assigns) writes the dirty states and waits for
the producer, so that a device's new owner reads them when it recovers the changelog; then the live
states are dropped, because a device may come back after another worker has judged it. A batch
taken before the rebalance and judged after it waits until the tables are recovered, and judges only
the devices whose partitions are still this worker's: the others' new owner reads their records
again from the committed offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping

from streams import metrics
from vigil.rules import state_codec
from vigil.rules.state import DeviceState

log = logging.getLogger(__name__)

# A state not judged for this long is dropped from memory at the next flush (its bytes stay in the
# table): as objects a wearable's state takes 5-25 KB, as bytes about 1 KB, so only devices
# reporting this often or more stay live, and the others are decoded when their next message comes
# (30-80 us).
LIVE_FOR_S = 10.0


class DeviceStates:
    """Device id (bytes) -> its `DeviceState`, over a changelog-backed table of encoded states."""

    def __init__(self, table: MutableMapping[bytes, bytes], *, owned: Callable[[Iterable[bytes]], set[bytes]]):
        # `owned`: which of these device keys are on partitions this worker holds now.
        self._table = table
        self._owned = owned
        # Oldest judged first, so that the states to drop are at the front.
        self._live: OrderedDict[bytes, DeviceState] = OrderedDict()
        self._judged_at: dict[bytes, float] = {}
        self._dirty: set[bytes] = set()
        # Held while a batch is judged and while states are written: see the module's invariant.
        self.lock = asyncio.Lock()
        # Cleared from a rebalance until the tables are recovered.
        self.ready = asyncio.Event()
        self.ready.set()
        # Counts rebalances, so a batch can tell whether one happened since it was taken.
        self.generation = 0

    def get(self, key: bytes) -> DeviceState:
        """The device's state: the live one, else the one last written to the table, else a new one."""
        state = self._live.get(key)
        if state is None:
            state = state_codec.decode(self._table.get(key))
            self._live[key] = state
        return state

    def changed(self, key: bytes, now_s: float | None = None) -> None:
        """The device's state was judged anew and what it found is on Kafka: write it at the next flush."""
        self._dirty.add(key)
        self._live.move_to_end(key)
        self._judged_at[key] = time.monotonic() if now_s is None else now_s

    def still_owned(self, keys: Iterable[bytes]) -> set[bytes]:
        """Of these devices, those on partitions this worker still holds."""
        return self._owned(keys)

    def flush(self, now_s: float | None = None) -> int:
        """Write each dirty state to the table once, drop the states not judged for `LIVE_FOR_S`; the
        number written. Call with `lock` held."""
        written = 0
        for key in self._dirty:
            encoded = state_codec.encode(self._live[key])
            self._table[key] = encoded
            metrics.STATE_BYTES.observe(len(encoded))
            written += 1
        self._dirty.clear()
        metrics.STATE_WRITES.inc(written)
        oldest = (time.monotonic() if now_s is None else now_s) - LIVE_FOR_S
        while self._live:
            key = next(iter(self._live))
            if self._judged_at.get(key, oldest) > oldest:
                break
            del self._live[key]
            self._judged_at.pop(key, None)
        metrics.LIVE_STATES.set(len(self._live))
        return written

    def forget(self) -> None:
        """Drop every live state (the table keeps what was written); call after `flush`."""
        self._live.clear()
        self._judged_at.clear()
        self._dirty.clear()

    async def before_commit(self) -> None:
        """Write what was judged, waiting for a batch being judged to be finished first."""
        async with self.lock:
            self.flush()

    async def hand_over(self, flush_producer: Callable[[], Awaitable[None]]) -> None:
        """Partitions are being revoked: write the dirty states, see them sent, drop the live ones."""
        self.ready.clear()
        self.generation += 1
        async with self.lock:
            written = self.flush()
            if written:
                # Only then: the first revocation comes as a worker starts, and waiting there for a
                # producer that is not running yet held the group join up for good.
                await flush_producer()
            self.forget()
        log.info("rebalance: %d device states written; judging waits for the tables to be recovered", written)

    def recovered(self) -> None:
        """The tables are recovered after a rebalance: batches may be judged again."""
        if not self.ready.is_set():
            log.info("tables recovered: judging resumes")
        self.ready.set()

    @property
    def live(self) -> int:
        return len(self._live)
