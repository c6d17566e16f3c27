"""One pass over a device's readings in event-time order, from a checkpoint of every rule's state.

Readings are taken an instant (one timestamp) at a time: every reading of the instant is added
first, then time advances to it. So a minute is judged once a reading from a later minute has
been added, and a fall's quiet time sees activity sent at its very last instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import lru_cache

from vigil.rules.counts import WindowCount
from vigil.rules.episodes import Episode, Outbox
from vigil.rules.falls import Fall
from vigil.rules.incidents import judge_incidents
from vigil.rules.minute_store import MINUTE_MS, MinuteStore
from vigil.rules.minutes import SustainedMinutes
from vigil.rules.spans import Span
from vigil.rules.spec import (
    STEPS_METRIC,
    WORN_METRIC,
    FallRule,
    Rule,
    SpanRule,
    SustainedMinutesRule,
    WindowCountRule,
)

Reading = tuple[int, str, float]
Evaluator = SustainedMinutes | Span | WindowCount | Fall
Add = Callable[[int, str, float, Outbox], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a set of rules needs, worked out once per set: the metrics each rule reads, and how many
    minutes back each aggregated metric is kept.
    """

    rules: tuple[Rule, ...]
    reads: tuple[frozenset[str], ...]
    horizons: dict[str, int]


@lru_cache(maxsize=256)
def plan(rules: tuple[Rule, ...]) -> Plan:
    kinds = [rule.type for rule in rules]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"two rules of the same type in {kinds}")
    horizons: dict[str, int] = {}

    def keep(metric: str, minutes: int) -> None:
        horizons[metric] = max(horizons.get(metric, 0), minutes)

    reads = []
    for rule in rules:
        if isinstance(rule, SustainedMinutesRule):
            longest = max(max(t.minutes for t in rule.tiers), rule.clear_minutes)
            keep(rule.metric, longest)
            if rule.requires_worn:
                keep(WORN_METRIC, longest)
            if rule.max_steps is not None:
                keep(STEPS_METRIC, max(t.minutes for t in rule.tiers))
            reads.append(frozenset({rule.metric}))
        elif isinstance(rule, FallRule):
            reads.append(frozenset({rule.metric, rule.activity_metric, WORN_METRIC}))
        elif isinstance(rule, SpanRule | WindowCountRule):
            reads.append(frozenset({rule.metric}))
        else:
            raise TypeError(f"{rule!r} is not a rule the evaluators know")
    return Plan(rules=rules, reads=tuple(reads), horizons=horizons)


class Replay:
    """Evaluators for a set of rules over one device, built from a checkpoint and saved as one.

    A rule with no state and none of its metrics among the readings or the aggregates has nothing to
    judge (a watch sends no CO readings): it gets no evaluator, which keeps a call's cost to the rules
    that matter. Aggregates are kept, and minutes counted as judged, for every rule all the same, so the
    state does not depend on how readings were batched.
    """

    def __init__(self, rules: Sequence[Rule], checkpoint: dict | None, device_id: str,
                 metrics: AbstractSet[str] = frozenset()) -> None:
        checkpoint = checkpoint or {}
        states: dict[str, dict] = checkpoint.get("rules", {})
        found = plan(tuple(rules))
        self.horizons = found.horizons
        self.store = MinuteStore.from_dict(checkpoint.get("minutes"))
        self.out = Outbox(device_id)
        self.last_ms: int | None = None
        self.evaluators: dict[str, Evaluator] = {}
        self.minute_rules: list[SustainedMinutes] = []
        self.clocked: list[WindowCount | Fall] = []
        self.routes: dict[str, list[Add]] = {}
        # Aggregated metrics count as read too: a minute still to judge may hold them.
        present = set(metrics) | set(self.store.metrics())
        for rule, reads in zip(found.rules, found.reads, strict=True):
            state = states.get(rule.type)
            if state is not None or not reads.isdisjoint(present):
                self.evaluators[rule.type] = self._evaluator(rule, state, reads)
        # Every rule with a state has an evaluator; a switched-off rule keeps only an open episode: its
        # alert stays open (a person may resolve it) and is judged again if the rule comes back.
        self.carried = {kind: state for kind, state in states.items()
                        if kind not in self.evaluators and state.get("episode")}
        self.with_incidents = [e for e in self.evaluators.values() if e.rule.incident is not None]

    def _evaluator(self, rule: Rule, state: dict | None, reads: frozenset[str]) -> Evaluator:
        evaluator: Evaluator
        if isinstance(rule, SustainedMinutesRule):
            evaluator = SustainedMinutes(rule, state, self.store)
            self.minute_rules.append(evaluator)
            return evaluator
        if isinstance(rule, SpanRule):
            evaluator = Span(rule, state)
        elif isinstance(rule, WindowCountRule):
            evaluator = WindowCount(rule, state)
            self.clocked.append(evaluator)
        else:
            evaluator = Fall(rule, state)
            self.clocked.append(evaluator)
        for metric in reads:
            self.routes.setdefault(metric, []).append(evaluator.add)
        return evaluator

    def run(self, readings: Sequence[Reading], settle_before_ms: int) -> dict:
        """Judge readings sorted by time; returns the checkpoint as of `settle_before_ms`.

        The checkpoint holds every reading before that time and none after it.
        """
        snapshot: dict | None = None
        store, routes, horizons, out = self.store, self.routes, self.horizons, self.out
        i, count = 0, len(readings)
        while i < count:
            ts = readings[i][0]
            if snapshot is None and ts >= settle_before_ms:
                snapshot = self.to_dict()
            out.found_ms = ts
            while i < count and readings[i][0] == ts:
                _, metric, value = readings[i]
                if metric in horizons:
                    store.add(ts, metric, value)
                for add in routes.get(metric, ()):
                    add(ts, metric, value, out)
                i += 1
            self._advance(ts)
        if snapshot is None:
            snapshot = self.to_dict()
        return snapshot

    def _advance(self, ts: int) -> None:
        self.last_ms = ts
        store = self.store
        last_complete = ts // MINUTE_MS - 1
        if self.horizons and (store.judged_through is None or last_complete > store.judged_through):
            for evaluator in self.minute_rules:
                evaluator.judge(store.heard(evaluator.rule.metric, store.judged_through, last_complete), self.out)
            store.judged_through = last_complete
            store.trim(last_complete + 1, self.horizons)
        for evaluator in self.clocked:
            evaluator.advance(ts, self.out)
        if self.with_incidents:
            judge_incidents(self.with_incidents, self.evaluators, at_ms=ts, out=self.out)

    def open_episodes(self) -> dict[str, Episode]:
        """The episodes open now, the switched-off rules' included."""
        episodes = {kind: e.episode for kind, e in self.evaluators.items() if e.episode is not None}
        for kind, state in self.carried.items():
            episodes[kind] = Episode.from_dict(state["episode"])
        return episodes

    def to_dict(self) -> dict:
        rules = {kind: state for kind, e in self.evaluators.items() if (state := e.to_dict()) is not None}
        return {"minutes": self.store.to_dict(), "rules": rules | self.carried}
