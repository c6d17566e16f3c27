"""Judging readings that arrive behind the settled time (stragglers) against the stored readings of their window.

A reading older than a device's settled time (see `vigil.rules.lateness`) cannot join the lateness
buffer: the checkpoint already holds every reading before that time. It is stored all the same (the
telemetry agent stores a batch before judging it), so the readings around it can be read back and the
past judged again. `windows` says which stored readings a batch's stragglers need (a pure function of
the rules and the settled time, for the adapter to fetch in one query), and `rejudge` judges them.

How the past is judged again
----------------------------
The window starts `lookback_ms(rules)` before the oldest straggler: long enough for every run,
span, count window and quiet time that the straggler can take part in to be rebuilt from the
readings alone. An episode that began before the window cannot be rebuilt from it; it is taken from
the live checkpoint (an episode open at the settled time was open all along). From that start the
window's readings are replayed twice, once without the stragglers and once with them. The first
replay is what was judged before (the same readings, in event time); the second is what in-order
delivery would have judged. Only what the second finds and the first does not is news, so nothing
already sent is sent again, and both replays share the same start, so what the window cannot see
cancels out.

What the news becomes:
- a new episode open at the settled time, or one revising the episode of an alert the alerts service
  still holds open, goes through the `Announcer` with the rest of the call's findings: it is raised
  with its event-time `triggered_at`, or the open alert is corrected to it (same id, earlier
  `triggered_at`), or cleared when the stragglers show it ended in the past;
- an episode that began and ended in the past, overlapping no alert that was sent, is sent as it
  happened: raised and cleared (only raised when an alert of its type is open now: the alerts
  service records it in that alert's history, and a clear would close the open alert);
- a revision of an episode whose alert is already resolved is not sent (the alert stood for it; a
  resolved alert is never reopened or moved), but an episode it shows still open now is raised
  again by the `Announcer` ("reopened").

Each rule's state at the settled time is repaired: where the two replays end in the same state the
live checkpoint is kept as it is (the stragglers changed nothing there), elsewhere the replay with
them is taken. The checkpoint is then exactly in-order delivery's for every rule whose state the
window rebuilds (all but an episode that began before it, whose timers keep their live values).

Bounds
------
Stragglers up to `REJUDGE_MAX_MS` (a day) behind the settled time are judged up to it, repairing
the checkpoint: a day of a 15-second watch is about 23,000 readings, one index range scan and a
few tens of milliseconds of replay per batch that brings one. Older ones (a phone syncing a
second path days late, up to the retention that ingest enforces) are judged on a window of their
own, at most a day long from the oldest of them: what they complete is raised, and cleared if the
window shows it ending, otherwise it stays open for a person to resolve; the live state, a day or
more ahead, is not re-derived. Stragglers beyond that window in the same batch are counted, not judged.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from vigil.rules.episodes import IncidentFound, Outbox, Transition
from vigil.rules.minute_store import MINUTE_MS
from vigil.rules.replay import Replay
from vigil.rules.spec import FallRule, Rule, SpanRule, SustainedMinutesRule, WindowCountRule

Reading = tuple[int, str, float]
# Stragglers up to this far behind the settled time are judged up to it, the checkpoint repaired.
REJUDGE_MAX_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Window:
    """Stored readings in [from_ms, to_ms) to judge stragglers against; `repairs` when it ends at the settled time."""

    from_ms: int
    to_ms: int
    repairs: bool


@dataclass(frozen=True, slots=True)
class Rejudged:
    """What a batch's stragglers change in the past."""

    # Through the `Announcer`, with the call's other findings: episodes the alerts service follows.
    attached: list[Transition]
    # Past episodes sent as they happened (`Announcer.past`).
    detached: list[Transition]
    incidents: list[IncidentFound]
    # The repaired checkpoint at the settled time, or None when the stragglers changed no rule's state.
    checkpoint: dict | None
    judged: int
    # Stragglers outside every window: counted, not judged.
    unjudged: int


@lru_cache(maxsize=256)
def lookback_ms(rules: tuple[Rule, ...]) -> int:
    """How far back of a reading the rules' verdicts around it depend on the readings.

    A minute rule's longest run (a tier or the clear condition) plus the silence a run may bridge
    before it, a span's raise or clear span, a count window, a fall's quiet and regroup time; and a
    minute more, for the reading just before a run that shows where it began. An open episode is
    older than this and comes from the checkpoint (see the module docstring); so does the quiet day
    after which arcing clears, which only an open episode waits for.
    """
    longest = 0
    for rule in rules:
        if isinstance(rule, SustainedMinutesRule):
            minutes = max(max(t.minutes for t in rule.tiers), rule.clear_minutes) + rule.max_silent_minutes + 1
            reach = minutes * MINUTE_MS
        elif isinstance(rule, SpanRule):
            reach = max(rule.span_s, rule.clear_s) * 1000
        elif isinstance(rule, WindowCountRule):
            reach = rule.window_s * 1000
        elif isinstance(rule, FallRule):
            reach = (rule.quiet_s + rule.regroup_s) * 1000
        else:
            raise TypeError(f"{rule!r} is not a rule the evaluators know")
        longest = max(longest, reach)
    return longest + MINUTE_MS


def windows(settled_ms: int, late_ms: Iterable[int], rules: Sequence[Rule]) -> list[Window]:
    """The stored readings that stragglers at `late_ms` (all before `settled_ms`) are judged against.

    At most two windows, oldest first and not overlapping: one up to the settled time for the
    stragglers of the last `REJUDGE_MAX_MS`, one of at most that length for older ones.
    """
    times = sorted(t for t in late_ms if t < settled_ms)
    if not times:
        return []
    lookback = lookback_ms(tuple(rules))
    found: list[Window] = []
    recent = [t for t in times if t >= settled_ms - REJUDGE_MAX_MS]
    if recent:
        found.append(Window(_minute_floor(recent[0] - lookback), settled_ms, repairs=True))
    if times[0] < settled_ms - REJUDGE_MAX_MS:
        start = _minute_floor(times[0] - lookback)
        end = min(times[-1] + lookback, times[0] + REJUDGE_MAX_MS, found[0].from_ms if found else settled_ms)
        found.insert(0, Window(start, end, repairs=False))
    return found


def rejudge(checkpoint: dict, told: dict[str, list], late: Sequence[Reading], stored: Iterable[Reading],
            rules: Sequence[Rule], device_id: str, settled_ms: int) -> Rejudged:
    """Judge stragglers `late` against the `stored` readings of their windows (the stragglers may be among them).

    `checkpoint` and `told` are the device's live ones, as of `settled_ms`; neither is changed.
    """
    late_set = set(late)
    history = set(stored) | late_set
    attached: list[Transition] = []
    detached: list[Transition] = []
    incidents: list[IncidentFound] = []
    repaired: dict | None = None
    judged = 0
    for window in windows(settled_ms, (ts for ts, _, _ in late_set), rules):
        inside = [r for r in history if window.from_ms <= r[0] < window.to_ms]
        stragglers = late_set.intersection(inside)
        if not stragglers:
            continue
        judged += len(stragglers)
        with_them = sorted(inside)
        without = [r for r in with_them if r not in stragglers]
        metrics = {metric for _, metric, _ in with_them}
        seed = _seed(checkpoint, window.from_ms)
        before = Replay(rules, copy.deepcopy(seed), device_id, metrics=metrics)
        before_state = before.run(without, window.to_ms)
        after = Replay(rules, copy.deepcopy(seed), device_id, metrics=metrics)
        after_state = after.run(with_them, window.to_ms)
        news = _news(before, after, told, repairs=window.repairs)
        attached += news[0]
        detached += news[1]
        incidents += news[2]
        if window.repairs:
            repaired = _repair(checkpoint, before_state, after_state)
    return Rejudged(attached=attached, detached=detached, incidents=incidents,
                    checkpoint=repaired if repaired != checkpoint else None,
                    judged=judged, unjudged=len(late_set) - judged)


def _minute_floor(ms: int) -> int:
    return ms // MINUTE_MS * MINUTE_MS


def _seed(checkpoint: dict, start_ms: int) -> dict:
    """The rules' state at the window's start: the live episodes that began before it, nothing else."""
    rules = {}
    for kind, state in (checkpoint.get("rules") or {}).items():
        episode = state.get("episode")
        if episode and episode["started_at_ms"] < start_ms:
            rules[kind] = {"episode": episode}
    return {"minutes": None, "rules": rules}


def _ended(replay: Replay) -> set[str]:
    """The alert ids of episodes still open when a replay ended."""
    return {episode.alert_id for episode in replay.open_episodes().values()}


@dataclass(slots=True)
class _Episode:
    kind: str
    first_ms: int
    last_ms: int | None  # None: open at the window's end


def _episodes(out: Outbox, open_at_end: set[str]) -> dict[str, _Episode]:
    """Each episode a replay changed (by alert id) and the span of event time it covered."""
    found: dict[str, _Episode] = {}
    for t in out.transitions:
        episode = found.setdefault(t.alert_id, _Episode(t.rule.type, t.triggered_at_ms, None))
        if t.change in ("cleared", "released") and t.alert_id not in open_at_end:
            episode.last_ms = t.at_ms
    return found


def _overlap(a: _Episode, b: _Episode) -> bool:
    return a.kind == b.kind and (b.last_ms is None or a.first_ms <= b.last_ms) and (
        a.last_ms is None or b.first_ms <= a.last_ms)


def _news(before: Replay, after: Replay, told: dict[str, list], *, repairs: bool
          ) -> tuple[list[Transition], list[Transition], list[IncidentFound]]:
    """What the replay with the stragglers found that the one without did not, sorted as the module says."""
    seen = {t.key for t in before.out.transitions}
    old, new = _episodes(before.out, _ended(before)), _episodes(after.out, _ended(after))
    followed = {known[3] for known in told.values()}
    attached: list[Transition] = []
    detached: list[Transition] = []
    sent_as: dict[str, str] = {}  # alert id found now -> the id of the alert that stood for it
    for t in sorted(after.out.transitions, key=lambda t: t.at_ms):
        if t.key in seen:
            continue
        episode = new[t.alert_id]
        revised = [alert for alert, o in old.items() if alert != t.alert_id and _overlap(episode, o)]
        follows = t.alert_id in followed or any(alert in followed for alert in revised)
        if repairs and follows:
            attached.append(t)  # a revision of an alert the alerts service holds open
        elif t.alert_id in old or revised:
            # A revision of an alert already resolved: not moved, not reopened (the `Announcer` raises
            # again an episode that is still open after the buffer).
            if revised:
                sent_as[t.alert_id] = revised[0]
        elif repairs and episode.last_ms is None:
            attached.append(t)  # a new episode, open at the settled time
        elif follows:
            continue  # an alert open now that a window ending a day or more ago cannot see whole
        elif t.change == "raised" or (t.change == "cleared" and t.rule.type not in told):
            detached.append(t)
    incidents = []
    found_before = {(i.rule.type, i.started_at_ms) for i in before.out.incidents}
    for incident in after.out.incidents:
        if (incident.rule.type, incident.started_at_ms) not in found_before:
            incidents.append(replace(incident, alert_id=sent_as.get(incident.alert_id, incident.alert_id)))
    return attached, detached, incidents


def _repair(live: dict, before: dict, after: dict) -> dict:
    """The checkpoint at the settled time: live where the stragglers changed nothing, the replay's elsewhere."""
    rules = dict(live.get("rules") or {})
    before_rules, after_rules = before["rules"], after["rules"]
    for kind in set(before_rules) | set(after_rules):
        if before_rules.get(kind) == after_rules.get(kind):
            continue
        if kind in after_rules:
            rules[kind] = after_rules[kind]
        else:
            rules.pop(kind, None)
    minutes = live.get("minutes") if before["minutes"] == after["minutes"] else after["minutes"]
    return {"minutes": minutes, "rules": rules}
