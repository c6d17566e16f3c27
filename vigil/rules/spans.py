"""The evaluator of conditions over a span of readings (`SpanRule`): leaks, smoke, heat, battery."""

from __future__ import annotations

from vigil.rules.episodes import Episode, Evidence, Outbox
from vigil.rules.spec import SpanRule, compare
from vigil.timefmt import ms_text


class Span:
    """Follows one metric's readings in time order: the run meeting the condition, or the clearing one."""

    __slots__ = ("clear_run", "episode", "rule", "run")

    def __init__(self, rule: SpanRule, state: dict | None) -> None:
        state = state or {}
        self.rule = rule
        # [first ms, last ms, readings, peak value]
        self.run: list[float] | None = list(state["run"]) if state.get("run") else None
        # [first ms, last ms, readings]
        self.clear_run: list[int] | None = list(state["clear_run"]) if state.get("clear_run") else None
        self.episode = Episode.from_dict(state.get("episode"))

    def to_dict(self) -> dict | None:
        if self.episode is None and self.run is None and self.clear_run is None:
            return None
        return {"run": list(self.run) if self.run else None,
                "clear_run": list(self.clear_run) if self.clear_run else None,
                "episode": self.episode.to_dict() if self.episode else None}

    def add(self, ts_ms: int, metric: str, value: float, out: Outbox) -> None:
        rule = self.rule
        if compare(value, rule.op, rule.threshold):
            self.clear_run = None
            run = self.run
            if run is None:
                run = self.run = [ts_ms, ts_ms, 0, value]
            run[1] = ts_ms
            run[2] += 1
            run[3] = max(run[3], value) if rule.op in ("above", "at_least") else min(run[3], value)
            if self.episode is not None:
                self.episode.active_ms = ts_ms
                out.update_alert(rule, self.episode, at_ms=ts_ms, evidence=self.evidence)
            elif ts_ms - run[0] >= rule.span_s * 1000:
                self.episode = out.raise_alert(rule, at_ms=ts_ms, started_at_ms=int(run[0]),
                                               severity=rule.severity, evidence=self.evidence())
            return
        self.run = None
        if self.episode is None:
            return
        if not compare(value, rule.clear_op, rule.clear_threshold):
            self.clear_run = None  # between the two conditions: neither raising nor clearing
            return
        run = self.clear_run
        if run is None:
            run = self.clear_run = [ts_ms, ts_ms, 0]
        run[1] = ts_ms
        run[2] += 1
        if ts_ms - run[0] >= rule.clear_s * 1000:
            out.clear_alert(rule, self.episode, at_ms=ts_ms, evidence={
                "metric": rule.metric, "clear_from": ms_text(run[0]), "clear_to": ms_text(ts_ms), "readings": run[2]})
            self.episode = self.clear_run = None

    def evidence(self) -> Evidence:
        """The current run of readings meeting the condition."""
        if self.run is None:
            return {"metric": self.rule.metric}
        first, last, count, peak = self.run
        return {"metric": self.rule.metric, "first_at": ms_text(int(first)), "last_at": ms_text(int(last)),
                "readings": int(count), "span_s": (last - first) / 1000, "peak": peak}
