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

4. **A fetch wait of 1.5 s, hard-coded** (`AIOKafkaConsumerThread._create_worker_consumer`). The
   worker fetches partitions that are often empty (dead letters, changelogs of devices not yet seen,
   quiet telemetry partitions), and a broker that holds a fetch for its whole wait while any
   partition in it is empty (Tansu does) then holds every record of a quiet fleet for up to 1.5 s
   before the rules see it. The worker's consumer is given `FETCH_MAX_WAIT_MS` instead.

5. **A step before every commit.** Faust has no hook between "these offsets are acknowledged" and
   "commit them"; the worker needs one to write the device states it keeps in memory
   (`streams.device_states`), so that no offset is committed before the state that judged its
   record is on the changelog. `Consumer.force_commit`, the one path to a commit, first awaits the
   steps registered with `before_commit`; Faust then flushes the producer and commits.

6. **Records fetched for a paused partition.** The fetch runs in the consumer's thread against
   Faust's live set of active partitions, which the event loop changes meanwhile (a recovery
   pauses and resumes partitions; a rebalance empties the set, and an empty set means "every
   partition" to aiokafka), and `Consumer.getmany` silently drops records of a partition that is
   not active when it hands them on. aiokafka's position has already moved past them, so unless a
   seek follows they are skipped. For a stream partition the commit then stops at the hole (fix 3)
   until the commit watch restarts the worker two minutes later (seen on about one restart in
   three here: heartbeats fetched while a recovery resumed the streams); for a changelog partition
   the recovery waits for ever for records it has just sought to (seen once in 16 workers
   leaving: "No event received for active tp"). Before each fetch, the records the last one
   dropped are sought back to, but only where the partition's position is still where that fetch
   left it, checked and sought in the consumer's thread, where the recovery's seeks run too: a
   seek of the recovery (to the committed offsets, or through a changelog) is never undone.

The patches reach into private methods, so `apply()` runs only on the pinned release and checks
that every method it wraps is there before touching any: an upgrade or a rename upstream stops the
worker at start-up instead of quietly dropping a correction.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from vigil.topics import HOT_PATH_FETCH_WAIT_MS

log = logging.getLogger(__name__)

# The patches replace private methods, so they are only known to be right for the release whose
# source they were written against; pyproject.toml pins the same version (a unit test holds the two
# together). Moving the pin means reading each patched method in the new release first.
PINNED_FAUST_VERSION = "0.15.3"
_PATCHED = "_vigil_patched"

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]
# The worker is on the path from a reading to an alert (vigil.topics says why this is short).
FETCH_MAX_WAIT_MS = HOT_PATH_FETCH_WAIT_MS


class FaustPatchError(RuntimeError):
    """The installed faust-streaming is not the one these corrections were written for."""


def hole_at_head(acked: Sequence[int], committed: int | None) -> bool:
    """Whether the next offset to commit is unacknowledged while later ones are acknowledged."""
    return bool(acked) and committed is not None and min(acked) > committed


def _commit_stops_at_hole(original: Callable[..., int | None]) -> Callable[..., int | None]:
    """`Consumer._new_offset` that returns nothing to commit while the head offset is missing."""

    @functools.wraps(original)
    def _new_offset(self: Consumer, tp: Any) -> int | None:
        if hole_at_head(self._acked[tp], self._committed_offset[tp]):
            return None  # the next record to commit has not been acknowledged yet
        return original(self, tp)

    return _new_offset


def _no_gaps(original: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """`Consumer._add_gap` that records nothing, so a jump in offsets is never committed."""

    @functools.wraps(original)
    async def _add_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        return None

    return _add_gap


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

    return step


_FETCHED = "_vigil_fetched"


def unread(fetched: Mapping[Any, Sequence[Any]], read: Mapping[Any, int | None]) -> dict[Any, int]:
    """Per partition, the first fetched offset after the last one the consumer read.

    Records of one partition are handed on in order, so everything from that offset on was dropped.
    """
    first: dict[Any, int] = {}
    for tp, records in fetched.items():
        last = read.get(tp)
        if not records or (last is not None and records[-1].offset <= last):
            continue  # all read: the usual case, decided without walking the batch
        first[tp] = next(r.offset for r in records if last is None or r.offset > last)
    return first


def rewinds(fetched: Mapping[Any, Sequence[Any]], dropped: Mapping[Any, int]) -> dict[Any, tuple[int, int]]:
    """Per partition with dropped records: the position the fetch left it at, and its first dropped offset."""
    return {tp: (fetched[tp][-1].offset + 1, first) for tp, first in dropped.items()}


async def _rewind_untouched(consumer: Any, wanted: Mapping[Any, tuple[int, int]]) -> dict[Any, int]:
    """In the consumer's thread: put each partition back to its first dropped record, unless a seek
    moved it since the fetch. Nothing here awaits between reading a position and seeking, so none
    of the recovery's seeks (they run in this thread) can come in between."""
    assigned = consumer.assignment()
    back: dict[Any, int] = {}
    for tp, (left_at, first) in wanted.items():
        if tp in assigned and await consumer.position(tp) == left_at:
            consumer.seek(tp, first)
            back[tp] = first
    return back


async def _read_dropped_again(consumer: Consumer, fetched: Mapping[Any, Sequence[Any]]) -> None:
    """Records of the last fetch that were dropped are read again where nothing sought since (fix 6).

    A seek since (the recovery's, to the committed offsets or through a changelog) says where its
    partition is to be read from, and is never undone; when none came, nothing else would bring
    the records back.
    """
    wanted = rewinds(fetched, unread(fetched, consumer._read_offset))
    if not wanted:
        return
    name = {tp: f"{tp.topic}-{tp.partition}" for tp in wanted}
    try:
        thread = consumer._thread
        back = await thread.call_thread(_rewind_untouched, thread._ensure_consumer(), wanted)
    except Exception:  # revoked meanwhile, or the consumer stopping: the next owner reads from the commit
        log.warning("could not read dropped records again: %s", wanted, exc_info=True)
        return
    log.info("records fetched while their partition was paused were dropped; reading again from %s"
             "; left where a seek since put them: %s",
             {name[tp]: offset for tp, offset in back.items()}, sorted(name[tp] for tp in wanted if tp not in back))


def _dropped_read_again(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`Consumer._wait_next_records` that first reads again what the last fetch dropped (fix 6).

    Checked once per fetch, against the consumer's own read offsets, so that nothing is added per
    record; by the next fetch `getmany` has handed on, or dropped, all of the last one.
    """

    @functools.wraps(original)
    async def _wait_next_records(self: Consumer, timeout: float) -> Any:
        last = getattr(self, _FETCHED, None)
        if last:
            setattr(self, _FETCHED, None)
            await _read_dropped_again(self, last)
        records, active = await original(self, timeout)
        setattr(self, _FETCHED, records)
        return records, active

    return _wait_next_records


def _short_fetch_wait(create: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(create)
    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        # Read by the consumer's start(), where it builds its fetcher; this runs before that.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    return create_worker_consumer


_BEFORE_COMMIT = "_vigil_before_commit"


def before_commit(app: Any, step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` at the start of every offset commit of `app`'s consumer (see fix 5)."""
    steps = getattr(app, _BEFORE_COMMIT, None)
    if steps is None:
        steps = []
        setattr(app, _BEFORE_COMMIT, steps)
    steps.append(step)


def _steps_first(original: Callable[..., Awaitable[bool]]) -> Callable[..., Awaitable[bool]]:
    """`Consumer.force_commit` that runs the app's `before_commit` steps before committing anything."""

    @functools.wraps(original)
    async def force_commit(self: Consumer, *args: Any, **kwargs: Any) -> bool:
        for step in getattr(self.app, _BEFORE_COMMIT, ()):
            await step()
        return await original(self, *args, **kwargs)

    return force_commit


PATCHES: tuple[tuple[type, str, Wrap], ...] = (
    (Consumer, "_new_offset", _commit_stops_at_hole),
    (Consumer, "_add_gap", _no_gaps),
    (Recovery, "on_recovery_completed", _resume_partitions_last),
    (Recovery, "_resume_streams", _resume_partitions_last),
    (AIOKafkaConsumerThread, "_create_worker_consumer", _short_fetch_wait),
    (Consumer, "force_commit", _steps_first),
    (Consumer, "_wait_next_records", _dropped_read_again),
)


def installed_faust_version() -> str | None:
    """The version of the installed faust-streaming distribution, or None if there is none."""
    try:
        return importlib.metadata.version("faust-streaming")
    except importlib.metadata.PackageNotFoundError:
        return None


def require_pinned_faust(installed: str | None) -> None:
    """Refuse any faust-streaming but the pinned one: a private method may have changed under us."""
    if installed != PINNED_FAUST_VERSION:
        found = "no faust-streaming distribution" if installed is None else f"faust-streaming {installed}"
        raise FaustPatchError(
            f"streams.faust_fixes corrects faust-streaming {PINNED_FAUST_VERSION}, but {found} is "
            f"installed; install faust-streaming=={PINNED_FAUST_VERSION}, or review every patch "
            "against the new release before moving PINNED_FAUST_VERSION and the pin in pyproject.toml."
        )


def install(patches: Sequence[tuple[type, str, Wrap]]) -> None:
    """Wrap each named method in place; idempotent, and all-or-nothing on a missing name.

    Every name is checked before any is patched: after a rename upstream, assigning the old name
    would only add an attribute nothing calls, and the correction would be silently gone.
    """
    missing = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls, name, _ in patches
        if not callable(getattr(cls, name, None))
    ]
    if missing:
        raise FaustPatchError(
            f"streams.faust_fixes cannot patch {', '.join(missing)}: no such method on the installed "
            "faust-streaming; the correction must be rewritten for its new name."
        )
    for cls, name, wrap in patches:
        original = getattr(cls, name)
        if not getattr(original, _PATCHED, False):
            patched = wrap(original)
            setattr(patched, _PATCHED, True)
            setattr(cls, name, patched)


def apply() -> None:
    """Install the corrections on the pinned faust-streaming; idempotent, loud on any other."""
    require_pinned_faust(installed_faust_version())
    install(PATCHES)
