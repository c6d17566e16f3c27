"""The detector state of the worker's devices: live in memory, written to the changelog once per commit.

Writing a device's whole state to the Faust table after every batch made one changelog record per
message at realistic rates (a batch rarely holds two messages of one device), and decoding and
encoding it each time cost more than judging the readings. Here a device judged since the last
commit is *dirty*, and `flush` writes each dirty state to the table once, as compact bytes
(`vigil.rules.state_codec`), just before Faust commits offsets (`streams.faust_fixes` calls it
first thing in every commit, and Faust flushes the producer before it commits).

The invariant this keeps: **an offset is committed only when the state written to the changelog
includes the judgement of every record before it.** Detection of a batch (judging, sending its
alert changes and incidents, marking the state changed) and `flush` hold the same lock, so a flush
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

Which states stay in memory, and in what form
---------------------------------------------
As objects a state takes 10-70 KB (a realistic wearable's 10-35 KB, a busy device's more), as
bytes 1-5 KB, and decoding one costs 15-120 us. Keeping a state as an object saves that decode only
if its device speaks again while it is kept, and a realistic fleet's devices (every 5 s to 5
minutes) speak once per commit interval at most. So a state read from the table is encoded and
compressed as soon as its device has been judged, and the object dropped; the bytes wait for the
flush (the table and the changelog see only the flush). A device whose next message comes before
the flush is a *busy* one: its state is kept as an object, written by the flush as it is encoded,
while it is judged at least every `LIVE_FOR_S`, for at most `MAX_LIVE` devices (the longest
unjudged dropped first). `vigil bench`'s busy devices report several times a second: each costs one
encode and decode more than before (its first judgement's, about 0.3 ms), then one encode per
commit, as before.

Compression (zlib, level 1) is for the states written when judged, the table's bulk: 375 B instead
of 1,076 on average, mostly small enough for Python's allocator of small objects, so that replacing
them does not fragment the C heap; 17 us to compress, 6 to decompress, next to the worker's 0.8-1
ms per message at real-time rates. A busy state is written every commit, 5-25 KB: compressing it
would cost the bench's busy devices 30-190 us a commit each, for at most `MAX_LIVE` values. `stored`
reads both (and what earlier releases wrote); a release before this one cannot read a compressed
state.

Measured with `vigil bench --fleet 20000` (bench/fleet_state.py), the worker's RSS above its idle
RSS at the end of the real-time minute, per device: 11.3 KiB before, when every state judged in the
last 10 s stayed an object (a quarter of a realistic fleet) and the table held orjson's buffers
(below); 2.9 KiB with objects dropped as here but every value uncompressed: the table's bytes (1.4-1.9
KiB per device after a restart) and the C heap's free space, which grew by about 1 KiB per device
as they were replaced, in pieces smaller than a page (`malloc_trim` gave back 1-2 MB of it); 1.4
KiB now, flat along the minute. The worker's CPU in that minute went down, if anything: 27 s for its
32,332 messages, 36-37 s before.

The values not compressed are copied into bytes of their own size before they are stored: orjson
3.13 returns its output in the buffer it wrote it into, 4-64 KB whatever its length (see `_exact`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping

from streams import metrics
from vigil.rules import state_codec
from vigil.rules.state import DeviceState

log = logging.getLogger(__name__)

# A busy state not judged for this long is dropped at the next flush: well over the commit interval
# (`streams.app`, 1 s), so that a device judged in every interval keeps its state whatever the
# batches' timing, and short, so that a backlog's catch-up (which judges a device's records in
# consecutive batches, making it busy) leaves few states behind.
LIVE_FOR_S = 4.0
# At most this many busy states are kept after a flush: `vigil bench`'s busy devices (400, and 80
# leak sensors) fit, and a fleet's worth of them cannot hold the memory up (each 10-70 KB).
MAX_LIVE = 1_000
# zlib's level for the states written when judged: level 1 makes a realistic state 2.9 times smaller
# (1,076 -> 375 B on average) in 17 us, level 6 only 6 % smaller again in 22 us.
_LEVEL = 1
# The first byte of what zlib writes; a state written as it is begins with "{" (JSON).
_ZLIB_HEADER = 0x78


class DeviceStates:
    """Device id (bytes) -> its `DeviceState`, over a changelog-backed table of encoded states."""

    def __init__(self, table: MutableMapping[bytes, bytes], *, owned: Callable[[Iterable[bytes]], set[bytes]]):
        # `owned`: which of these device keys are on partitions this worker holds now.
        self._table = table
        self._owned = owned
        # Read from the table for the batch being judged, not judged yet.
        self._new: dict[bytes, DeviceState] = {}
        # Judged once since the last flush: encoded, to be written by it.
        self._judged: dict[bytes, bytes] = {}
        # Busy states: oldest judged first, so that the states to drop are at the front.
        self._busy: OrderedDict[bytes, DeviceState] = OrderedDict()
        self._judged_at: dict[bytes, float] = {}
        # Busy states judged since the last flush.
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
        state = self._busy.get(key)
        if state is not None:
            return state
        state = self._new.pop(key, None)
        if state is None:
            encoded = self._judged.pop(key, None)
            if encoded is None:
                self._new[key] = state = stored(self._table.get(key))
                return state
            state = stored(encoded)
            self._dirty.add(key)  # its last judgement is not in the table yet
        self._busy[key] = state  # its device speaks again before the flush: a busy one
        return state

    def changed(self, key: bytes, now_s: float | None = None) -> None:
        """The device's state was judged anew and what it found is on Kafka: write it at the next flush."""
        state = self._new.pop(key, None)
        if state is not None:
            self._judged[key] = zlib.compress(state_codec.encode(state), _LEVEL)
            return
        self._dirty.add(key)
        self._busy.move_to_end(key)
        self._judged_at[key] = time.monotonic() if now_s is None else now_s

    def still_owned(self, keys: Iterable[bytes]) -> set[bytes]:
        """Of these devices, those on partitions this worker still holds."""
        return self._owned(keys)

    def flush(self, now_s: float | None = None) -> int:
        """Write each state judged since the last flush to the table once, and drop the busy states
        not worth keeping (see the module's docstring); the number written. Call with `lock` held."""
        for key in self._dirty:
            self._judged[key] = _exact(state_codec.encode(self._busy[key]))
        for key, encoded in self._judged.items():
            self._table[key] = encoded
            metrics.STATE_BYTES.observe(len(encoded))
        written = len(self._judged)
        self._judged.clear()
        self._dirty.clear()
        self._new.clear()  # read for a batch whose judgement failed
        metrics.STATE_WRITES.inc(written)
        oldest = (time.monotonic() if now_s is None else now_s) - LIVE_FOR_S
        while self._busy:
            key = next(iter(self._busy))
            if len(self._busy) <= MAX_LIVE and self._judged_at.get(key, oldest) > oldest:
                break
            del self._busy[key]
            self._judged_at.pop(key, None)
        metrics.LIVE_STATES.set(len(self._busy))
        return written

    def forget(self) -> None:
        """Drop every live state (the table keeps what was written); call after `flush`."""
        self._new.clear()
        self._judged.clear()
        self._busy.clear()
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
        return len(self._new) + len(self._busy)


def stored(raw: bytes | None) -> DeviceState:
    """The state a value of the table holds, compressed or not; None or empty: a new state."""
    if raw and raw[0] == _ZLIB_HEADER:
        raw = zlib.decompress(raw)
    return state_codec.decode(raw)


def _exact(encoded: bytes) -> bytes:
    """`encoded` in bytes of its own size.

    orjson 3.13 sets the length of the bytes it returns without shrinking the buffer it wrote them
    into: a 1 KB state held 64 KB of heap, of which the 4-8 KB it touched stayed resident. The table
    keeps every device's latest value for as long as the worker runs, so in the bench's real-time
    minute each value written in place of one read back from the changelog (those are of their own
    size) added about 8 KB to the RSS, until every device of the fleet had been written once
    (home-assistant/core#181245 found the same). The copy costs 0.2 us a state; encoding it, 20-100.
    """
    return bytes(memoryview(encoded))
