"""Judging a device's readings on event time, late and out-of-order ones included: `judge_device`.

How lateness is handled (checkpoint and replay)
-----------------------------------------------
A device's *watermark* is the newest reading time heard from it. Readings may arrive out of order,
so nothing is final until the watermark is `allowed_lateness_ms` past it: the *settled* time is
T0 = watermark - allowed lateness (`DEFAULT_ALLOWED_LATENESS_MS`, 2 minutes). The state keeps

- a *checkpoint*: every rule's state (runs, open episodes, per-minute aggregates) after all
  readings before T0, and
- a *buffer*: the readings at or after T0, in time order.

Each call admits the new readings: one already buffered is a redelivery and dropped, and one
older than T0 is a *straggler*: it cannot join the buffer, so it is judged against the stored
readings of its window (`vigil.rules.stragglers`; the telemetry agent stores a batch before
judging it and passes them in as `stored`), which repairs the checkpoint and sends what the
straggler completes or changes, with event-time moments. Without `stored` it is counted as
`too_late` and not judged. Then it replays the buffer from the checkpoint in time order, sends the
changes that replay finds and that were not sent before, moves T0 up to the new watermark minus
the allowance, saves the rules' state as of that instant as the new checkpoint (taken during the
same pass) and trims the buffer. So:

- An episode is judged as if its readings had come in order, whatever order a batch holds and
  however a straggler within the allowance arrives. A straggler behind it, up to a day behind T0,
  leaves the rules' state as in-order delivery would; what it completes is raised with its
  event-time `triggered_at`, an open alert it revises is corrected or cleared (older ones: see
  `vigil.rules.stragglers`).
- Latency is the arrival of the completing reading: the replay sends what it finds at once, so a
  leak is raised by the very call that brings the 60th second; only the checkpoint waits. A minute
  is complete once a reading from a later minute is in.
- A wearable syncing hours of data at once sends readings newer than its watermark: they are
  judged like live ones, with `triggered_at` back when the condition was met.
- Sending before the allowance has passed is a bet that no straggler will change the verdict.
  When one does, the alerts service is kept in step with what the readings now show (see
  `vigil.rules.announce`): an open alert stands for the episode as now seen (a revised start
  never makes a second alert, and the alert keeps its id), an alert whose condition vanished is
  cleared with "withdrawn" in its evidence. When a straggler shows the condition was met earlier
  than an open alert says (a leak's newest messages arrived first, so the first verdict was at
  +5:30, the in-order one at +4:00), an `updated` event for the same alert carries the earlier
  `triggered_at`, and the alerts service keeps the earliest it is told: the stored moment is then
  in-order delivery's. The rules' state, and so every later verdict, is exactly that of in-order
  delivery; a verdict already sent may be off by at most the allowance, but an alert's
  `triggered_at`, once its stragglers are in, is never later than in-order delivery's.

Why 2 minutes: MQTT (QoS 1, per client) and Kafka (telemetry keyed by device) both keep a device's
messages in order, so disorder comes from a message redelivered after its successor or from a
gateway merging paths. Two minutes covers a swapped pair of messages at the simulator's message
interval (4 samples of 15 s), and disorder inside one message is free at any allowance. A longer
one costs CPU (each reading is replayed about allowance / message interval times) and state (the
buffer holds the allowance's readings); readings later than it take the slower straggler path,
which reads their window back from PostgreSQL.

In order, the buffer is not replayed (the fast path): when every new reading is later than the
newest one judged and the rules are the same, the call goes on from the *head*, every rule's state
after the buffer (kept in the state once the buffer holds `HEAD_MIN_BUFFERED` readings), judging the
new readings only, and moves the checkpoint up by judging from it only the readings that T0 passed.
Each reading is then judged at most twice, whatever the allowance. Both passes do what the replay
does over the same readings (one instant at a time, evaluators for the metrics of the whole buffer),
and the changes a replay would find again at buffered readings were all sent or dropped before, so
the events and the state are exactly those of the replay; a batch with a reading at or before the
newest judged instant, a care plan change and a state saved without a head take the replay.

A care plan changes `rules` between calls: the replay judges from the checkpoint with the rules
it is given. An open alert stays open and is judged by the new parameters from then on, even one
raised within the allowance that the new rules, re-judging the buffer, would not have raised (the
state keeps a fingerprint of the rules to notice the change).
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from vigil.events import AlertChanged, IncidentOpened
from vigil.rules.announce import Announcer
from vigil.rules.evidence import parameters
from vigil.rules.replay import Replay
from vigil.rules.spec import Rule
from vigil.rules.state import DeviceState, Reading
from vigil.rules.stragglers import Window, rejudge, windows

DEFAULT_ALLOWED_LATENESS_MS = 120_000
# A device sending more than this within the allowance has its oldest buffered readings settled
# early, so that a flood cannot grow the state without bound.
MAX_BUFFERED_READINGS = 2000
# Whether in-order batches go on from the head state; tests switch it off to compare with the full replay.
FAST_PATH = True
# The head is kept only when the buffer holds this many readings: below, replaying the buffer costs
# less than carrying the head through the table's changelog (a 30 s wearable buffers about 40).
HEAD_MIN_BUFFERED = 64
_METRIC = itemgetter(1)  # of a reading (ts_ms, metric, value)


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one batch of a device's readings led to."""

    alerts: list[AlertChanged]
    incidents: list[IncidentOpened]
    # Readings older than the settled time on arrival and not judged (no stored readings given, or
    # beyond the bounds of `vigil.rules.stragglers`): stored, but not judged.
    too_late: int = 0
    # Readings older than the settled time on arrival, judged against the stored readings of their window.
    judged_late: int = 0


def judge_device(
    state: DeviceState,
    readings: Iterable[Sequence],
    *,
    rules: Sequence[Rule],
    device_id: str,
    member_id: str,
    now_ms: int,
    allowed_lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS,
    location: str | None = None,
    stored: Iterable[Sequence] | None = None,
) -> Judgement:
    """Fold readings `(ts_ms, metric, value)` (any order) into the state; return the events they cause.

    `stored`: the device's stored readings in `late_windows(state, readings, rules)`, read back for
    the readings older than the settled time; without it those are counted in `too_late`, not judged.
    """
    fresh, late = _admit(state, readings)
    rejudged = None
    if late and stored is not None:
        rejudged = rejudge(state.checkpoint, state.told, late, [_reading(r) for r in stored], rules, device_id,
                           state.settled_ms)
    too_late = len(late) if rejudged is None else rejudged.unjudged
    judged_late = 0 if rejudged is None else rejudged.judged
    if rejudged is not None and rejudged.checkpoint is not None:
        state.checkpoint = rejudged.checkpoint
        state.head = None  # the head was taken from the checkpoint before its repair
    elif not fresh and not (rejudged and (rejudged.attached or rejudged.detached or rejudged.incidents)):
        return Judgement(alerts=[], incidents=[], too_late=too_late, judged_late=judged_late)
    fresh.sort()
    digest = rules_digest(tuple(rules))
    # In order (every new reading after the newest one judged, same rules): go on from the head.
    in_order = (FAST_PATH and fresh and state.head is not None and state.buffer and state.rules_digest == digest
                and fresh[0][0] > state.buffer[-1][0])
    buffer = state.buffer + fresh if in_order else sorted(state.buffer + fresh)
    watermark = max(state.watermark_ms, buffer[-1][0] if buffer else 0)
    settle_before = max(state.settled_ms, watermark - allowed_lateness_ms)
    settled_count = bisect_left(buffer, (settle_before,))
    if len(buffer) - settled_count > MAX_BUFFERED_READINGS:
        settle_before = buffer[-MAX_BUFFERED_READINGS][0]
        settled_count = bisect_left(buffer, (settle_before,))

    # Which rules get an evaluator depends on the metrics of the whole buffer, on both paths alike.
    counts = _metric_counts(state, fresh if in_order else None, buffer)
    metrics = {metric for metric, count in counts.items() if count}
    if in_order:
        replay = Replay(rules, state.head, device_id, metrics=metrics)
        head = replay.run(fresh, fresh[-1][0] + 1)
        checkpoint = state.checkpoint
        if settled_count or settle_before != state.settled_ms:
            checkpoint = Replay(rules, state.checkpoint, device_id, metrics=metrics).run(
                buffer[:settled_count], settle_before)
    else:
        replay = Replay(rules, state.checkpoint, device_id, metrics=metrics)
        checkpoint = replay.run(buffer, settle_before)
        head = None  # taken below if it is kept
    announcer = Announcer(announced=state.announced, told=state.told, rules={r.type: r for r in rules},
                          device_id=device_id, member_id=member_id, now_ms=now_ms, location=location)
    # Past episodes found by stragglers go first: sent after an alert of their type is raised again,
    # they would land in that alert (see `vigil.rules.stragglers`).
    alerts = announcer.past(rejudged.detached) if rejudged else []
    # New rules re-judge the buffered readings; an alert they would not have raised stays open all the
    # same (a care plan applies from now on) and is judged by the new rules from the checkpoint on.
    found = [*rejudged.attached, *replay.out.transitions] if rejudged else replay.out.transitions
    changes, kept = announcer.alerts(found, replay.open_episodes(), replay.last_ms or watermark,
                                     keep_open=state.rules_digest not in (None, digest))
    alerts += changes
    incidents = announcer.incidents([*rejudged.incidents, *replay.out.incidents] if rejudged
                                    else replay.out.incidents)
    for kind, episode in kept.items():
        checkpoint["rules"][kind] = {**checkpoint["rules"].get(kind, {}), "episode": episode.to_dict()}

    state.rules_digest = digest
    state.watermark_ms = watermark
    state.settled_ms = settle_before
    state.checkpoint = checkpoint
    state.buffer = buffer[settled_count:]
    counts.subtract(map(_METRIC, buffer[:settled_count]))
    state.buffer_metrics = counts
    # A kept episode is in the checkpoint only: the next call replays the buffer to carry it to the head.
    state.head = None
    if not kept and len(state.buffer) >= HEAD_MIN_BUFFERED:
        state.head = head if head is not None else replay.to_dict()
    # A change found at a reading now settled is in the checkpoint: no replay finds it again.
    state.announced = {key: found for key, found in state.announced.items() if found >= settle_before}
    return Judgement(alerts=alerts, incidents=incidents, too_late=too_late, judged_late=judged_late)


def late_windows(state: DeviceState, readings: Iterable[Sequence], rules: Sequence[Rule]) -> list[Window]:
    """The stored readings `judge_device` needs for this batch's readings older than the settled time.

    Empty, and cheap, when every reading is in time: the adapter reads nothing then.
    """
    settled = state.settled_ms
    late = [int(r[0]) for r in readings if r[0] < settled]
    return windows(settled, late, rules) if late else []


@lru_cache(maxsize=1024)
def rules_digest(rules: tuple[Rule, ...]) -> str:
    """A fingerprint of a rule set that is the same in every process (unlike `hash`)."""
    described = json.dumps([parameters(rule) for rule in rules], sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _metric_counts(state: DeviceState, appended: list[Reading] | None, buffer: list[Reading]) -> Counter[str]:
    """The readings of each metric in `buffer`: the state's buffer and `appended` after it, or any other."""
    if appended is None or state.buffer_metrics is None:
        return Counter(map(_METRIC, buffer))
    counts = state.buffer_metrics.copy()  # the state is changed only once the batch is judged
    counts.update(map(_METRIC, appended))
    return counts


def _reading(raw: Sequence) -> Reading:
    return int(raw[0]), str(raw[1]), float(raw[2])


def _admit(state: DeviceState, readings: Iterable[Sequence]) -> tuple[list[Reading], list[Reading]]:
    """The new readings worth judging, and those older than the settled time (each once)."""
    newest = state.buffer[-1][0] if state.buffer else None
    buffered: set[Reading] | None = None  # made only for a reading that may be buffered already
    seen: set[Reading] = set()
    fresh: list[Reading] = []
    late: list[Reading] = []
    for ts, metric, value in readings:
        reading = (int(ts), str(metric), float(value))
        if reading in seen:
            continue
        seen.add(reading)
        if reading[0] < state.settled_ms:
            late.append(reading)
            continue
        if newest is not None and reading[0] <= newest:
            if buffered is None:
                buffered = set(state.buffer)
            if reading in buffered:
                continue
        fresh.append(reading)
    return fresh, late
