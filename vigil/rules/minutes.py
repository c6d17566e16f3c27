"""The evaluator of sustained 1-minute means (`SustainedMinutesRule`), tiers included.

Runs are tracked incrementally, one `[first, last]` minute pair per tier and one for the clear
condition, so judging a minute costs the same whatever the window; the minute store is read only
for a minute's mean, the activity guard and the evidence.
"""

from __future__ import annotations

from vigil.rules.episodes import Episode, Evidence, Outbox
from vigil.rules.minute_store import MINUTE_MS, MinuteStore
from vigil.rules.spec import SEVERITY_RANK, STEPS_METRIC, SustainedMinutesRule, Tier, compare
from vigil.timefmt import ms_text

Run = list[int]  # [first minute, last minute that met the condition]


def _extend(run: Run | None, minute: int, max_silent: int) -> Run:
    """The run after `minute` met its condition: continued, or restarted after too long a silence."""
    if run is None or minute - run[1] - 1 > max_silent:
        return [minute, minute]
    run[1] = minute
    return run


class SustainedMinutes:
    """Judges whole minutes, in order, once the device's readings have passed their end."""

    __slots__ = ("clear_run", "episode", "rule", "runs", "store")

    def __init__(self, rule: SustainedMinutesRule, state: dict | None, store: MinuteStore) -> None:
        state = state or {}
        self.rule = rule
        self.store = store
        runs = [list(r) if r else None for r in state.get("runs") or []]
        # A care plan may have changed the number of tiers since the state was saved.
        self.runs: list[Run | None] = (runs + [None] * len(rule.tiers))[:len(rule.tiers)]
        self.clear_run: Run | None = list(state["clear_run"]) if state.get("clear_run") else None
        self.episode = Episode.from_dict(state.get("episode"))

    def to_dict(self) -> dict | None:
        if self.episode is None and self.clear_run is None and not any(self.runs):
            return None
        return {"runs": [list(r) if r else None for r in self.runs],
                "clear_run": list(self.clear_run) if self.clear_run else None,
                "episode": self.episode.to_dict() if self.episode else None}

    def judge(self, minutes: list[int], out: Outbox) -> None:
        for minute in minutes:
            self._judge(minute, out)

    def _judge(self, minute: int, out: Outbox) -> None:
        rule = self.rule
        if rule.requires_worn and self.store.unworn(minute):
            return  # off the body: as if the minute heard nothing
        mean = self.store.mean(rule.metric, minute)
        if mean is None:
            return
        value = mean[0]
        counts = rule.never_at_or_below is None or value > rule.never_at_or_below
        met: list[int] = []
        for i, tier in enumerate(rule.tiers):
            if counts and compare(value, tier.op, tier.threshold):
                run = self.runs[i] = _extend(self.runs[i], minute, rule.max_silent_minutes)
                if minute - run[0] + 1 >= tier.minutes and self._inactive(tier, minute):
                    met.append(i)
            else:
                self.runs[i] = None
        end_ms = (minute + 1) * MINUTE_MS
        if self.episode is None:
            if met:
                best = max(met, key=lambda i: (SEVERITY_RANK[rule.tiers[i].severity], i))
                self.clear_run = None
                self.episode = out.raise_alert(rule, at_ms=end_ms, started_at_ms=self.runs[best][0] * MINUTE_MS,
                                               severity=rule.tiers[best].severity,
                                               evidence=self._tier_evidence(best, minute))
            return
        episode = self.episode
        if met:
            best = max(met, key=lambda i: (SEVERITY_RANK[rule.tiers[i].severity], i))
            episode.active_ms = end_ms
            out.update_alert(rule, episode, at_ms=end_ms, severity=rule.tiers[best].severity,
                             evidence=lambda: self._tier_evidence(best, minute))
        if not compare(value, rule.clear_op, rule.clear_threshold):
            self.clear_run = None
            return
        run = self.clear_run = _extend(self.clear_run, minute, rule.max_silent_minutes)
        if minute - run[0] + 1 >= rule.clear_minutes:
            out.clear_alert(rule, episode, at_ms=end_ms,
                            evidence=self._window(minute - rule.clear_minutes + 1, minute))
            self.episode = self.clear_run = None
            self.runs = [None] * len(rule.tiers)

    def evidence(self) -> Evidence:
        """The minutes of the first tier's window up to the last judged minute."""
        last = self.store.judged_through
        if last is None:
            return {"metric": self.rule.metric}
        return self._window(last - self.rule.tiers[0].minutes + 1, last)

    def _inactive(self, tier: Tier, minute: int) -> bool:
        limit = self.rule.max_steps
        return limit is None or self.store.total(STEPS_METRIC, minute - tier.minutes + 1, minute) < limit

    def _tier_evidence(self, tier_index: int, minute: int) -> Evidence:
        tier = self.rule.tiers[tier_index]
        evidence = {"tier": tier_index, **self._window(minute - tier.minutes + 1, minute)}
        if self.rule.max_steps is not None:
            evidence["steps"] = self.store.total(STEPS_METRIC, minute - tier.minutes + 1, minute)
        return evidence

    def _window(self, first: int, last: int) -> Evidence:
        minutes = []
        for minute in range(first, last + 1):
            mean = self.store.mean(self.rule.metric, minute)
            minutes.append({"minute": ms_text(minute * MINUTE_MS), "mean": round(mean[0], 2) if mean else None,
                            "readings": mean[1] if mean else 0})
        return {"metric": self.rule.metric, "minutes": minutes}
