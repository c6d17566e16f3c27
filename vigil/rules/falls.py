"""The evaluator of falls (`FallRule`): the device's own fall flag, then no sign of getting up.

A fall reported while the wearable says it is off the body (its latest `worn` reading at or before
the fall is 0) is a dropped watch, not a fallen member, and is ignored, like every health rule
ignores off-body readings. A watch that never reports the flag counts as worn, and a watch that
comes off during the quiet time does not stand the alert down: it may have been torn off by the
fall.
"""

from __future__ import annotations

from vigil.rules.episodes import Episode, Evidence, Outbox
from vigil.rules.spec import WORN_METRIC, FallRule
from vigil.timefmt import ms_text


class Fall:
    """A fall waiting for its quiet time to pass, and the episode of the alert it raised."""

    __slots__ = ("episode", "last_worn", "pending", "rule")

    def __init__(self, rule: FallRule, state: dict | None) -> None:
        state = state or {}
        self.rule = rule
        # [fall ms, worn flag or None]
        self.pending: list[float | None] | None = list(state["pending"]) if state.get("pending") else None
        self.last_worn: float | None = state.get("last_worn")
        self.episode = Episode.from_dict(state.get("episode"))

    def to_dict(self) -> dict | None:
        if self.episode is None and self.pending is None and self.last_worn is None:
            return None
        return {"pending": list(self.pending) if self.pending else None, "last_worn": self.last_worn,
                "episode": self.episode.to_dict() if self.episode else None}

    def add(self, ts_ms: int, metric: str, value: float, out: Outbox) -> None:
        pending = self.pending
        if metric == WORN_METRIC:
            self.last_worn = value
            if pending is not None and pending[0] == ts_ms:
                pending[1] = value  # the flag sent with the fall itself
        elif metric == self.rule.metric:
            if value >= 1 and pending is None:
                self.pending = [ts_ms, self.last_worn]
        elif (metric == self.rule.activity_metric and value > 0 and pending is not None
              and pending[0] < ts_ms <= pending[0] + self.rule.quiet_s * 1000):
            self.pending = None  # activity within the quiet time: the member got up

    def advance(self, ts_ms: int, out: Outbox) -> None:
        """Judge a fall whose quiet time has passed; forget an episode after `regroup_s` without falls."""
        rule = self.rule
        if self.pending is not None and ts_ms >= self.pending[0] + rule.quiet_s * 1000:
            fall_ms, worn = int(self.pending[0]), self.pending[1]
            self.pending = None
            if not (rule.requires_worn and worn == 0):
                self._judged(fall_ms, worn, out)
        episode = self.episode
        if episode is None:
            return
        regrouped_until = episode.active_ms + rule.regroup_s * 1000
        # A fall still waiting for its quiet time belongs to the episode if it came within `regroup_s`.
        if ts_ms >= regrouped_until and (self.pending is None or self.pending[0] > regrouped_until):
            out.release_alert(rule, episode, at_ms=regrouped_until)
            self.episode = None

    def _judged(self, fall_ms: int, worn: float | None, out: Outbox) -> None:
        at_ms = fall_ms + self.rule.quiet_s * 1000
        evidence = self._fall_evidence(fall_ms, worn)
        if self.episode is None:
            self.episode = out.raise_alert(self.rule, at_ms=at_ms, started_at_ms=fall_ms,
                                           severity=self.rule.severity, evidence=evidence)
        else:
            self.episode.active_ms = at_ms
            out.update_alert(self.rule, self.episode, at_ms=at_ms, evidence=lambda: evidence)

    def _fall_evidence(self, fall_ms: int, worn: float | None) -> Evidence:
        return {"metric": self.rule.metric, "fall_at": ms_text(fall_ms), "quiet_s": self.rule.quiet_s,
                "activity_metric": self.rule.activity_metric, "activity_within_quiet": 0, "worn": worn}

    def evidence(self) -> Evidence:
        """The last fall of the open episode."""
        if self.episode is None:
            return {"metric": self.rule.metric}
        return self._fall_evidence(self.episode.active_ms - self.rule.quiet_s * 1000, self.last_worn)
