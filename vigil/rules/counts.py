"""The evaluator of a count over a sliding window of event time (`WindowCountRule`): electrical arcing."""

from __future__ import annotations

from vigil.rules.episodes import Episode, Evidence, Outbox
from vigil.rules.spec import WindowCountRule
from vigil.timefmt import ms_text


class WindowCount:
    """Keeps the readings above zero of the last `window_s`; clears after `clear_s` without any."""

    __slots__ = ("episode", "events", "last_event_ms", "rule")

    def __init__(self, rule: WindowCountRule, state: dict | None) -> None:
        state = state or {}
        self.rule = rule
        self.events: list[list[float]] = [list(e) for e in state.get("events") or []]  # [ms, value], oldest first
        self.last_event_ms: int | None = state.get("last_event_ms")
        self.episode = Episode.from_dict(state.get("episode"))

    def to_dict(self) -> dict | None:
        if self.episode is None and not self.events:
            return None
        return {"events": [list(e) for e in self.events], "last_event_ms": self.last_event_ms,
                "episode": self.episode.to_dict() if self.episode else None}

    def add(self, ts_ms: int, metric: str, value: float, out: Outbox) -> None:
        if value <= 0:
            return
        self._clear_if_quiet(ts_ms, out)  # the quiet day ended before this reading
        self.events.append([ts_ms, value])
        self.last_event_ms = ts_ms
        self._forget_before(ts_ms)
        if sum(v for _, v in self.events) < self.rule.threshold:
            return
        if self.episode is None:
            self.episode = out.raise_alert(self.rule, at_ms=ts_ms, started_at_ms=int(self.events[0][0]),
                                           severity=self.rule.severity, evidence=self.evidence())
        else:
            self.episode.active_ms = ts_ms
            out.update_alert(self.rule, self.episode, at_ms=ts_ms, evidence=self.evidence)

    def advance(self, ts_ms: int, out: Outbox) -> None:
        """Time has reached `ts_ms`: forget old events, and clear after a quiet `clear_s`."""
        if self.events and ts_ms - self.events[0][0] > self.rule.window_s * 1000:
            self._forget_before(ts_ms)
        self._clear_if_quiet(ts_ms, out)

    def _clear_if_quiet(self, ts_ms: int, out: Outbox) -> None:
        if self.episode is None or self.last_event_ms is None:
            return
        quiet_until = self.last_event_ms + self.rule.clear_s * 1000
        if ts_ms >= quiet_until:
            out.clear_alert(self.rule, self.episode, at_ms=quiet_until, evidence={
                "metric": self.rule.metric, "last_event_at": ms_text(self.last_event_ms), "quiet_s": self.rule.clear_s})
            self.episode = None

    def _forget_before(self, ts_ms: int) -> None:
        oldest = ts_ms - self.rule.window_s * 1000
        self.events = [e for e in self.events if e[0] >= oldest]

    def evidence(self) -> Evidence:
        """The events counted in the window."""
        return {"metric": self.rule.metric, "window_s": self.rule.window_s,
                "events": [{"at": ms_text(int(ts)), "value": value} for ts, value in self.events],
                "total": sum(v for _, v in self.events)}
