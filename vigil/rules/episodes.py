"""Open alerts and the changes evaluators find, collected in an outbox during one replay.

Evaluators only say what happened in event time; `vigil.rules.announce` decides what of it is
news to the alerts topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from vigil.events import alert_id
from vigil.rules.spec import SEVERITY_RANK, Rule

Change = Literal["raised", "updated", "cleared", "released"]
Evidence = dict[str, Any]


@dataclass(slots=True)
class Episode:
    """An open alert as its rule remembers it."""

    alert_id: str
    triggered_at_ms: int
    severity: str
    # When the condition began (first reading or minute of the run that raised it) and when it was
    # last observed: together, how long the loss has lasted, which incidents are judged on.
    started_at_ms: int
    active_ms: int
    # Event time of the last raised or updated event, for the update rate limit.
    updated_ms: int
    incident_opened: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Episode | None:
        return cls(**data) if data else None


@dataclass(frozen=True, slots=True)
class Transition:
    """One alert change in event time; `found_ms` is the reading time at which a replay saw it."""

    change: Change
    rule: Rule
    alert_id: str
    severity: str
    triggered_at_ms: int
    at_ms: int
    found_ms: int
    evidence: Evidence

    @property
    def key(self) -> str:
        """What makes the change the same one when a later replay finds it again."""
        return f"{self.alert_id}|{self.change}|{self.at_ms}"


@dataclass(frozen=True, slots=True)
class IncidentFound:
    """An episode became an incident at event time `at_ms`."""

    rule: Rule
    alert_id: str
    started_at_ms: int
    at_ms: int
    found_ms: int
    evidence: Evidence


@dataclass(slots=True)
class Outbox:
    """Where evaluators record changes while a replay walks through a device's readings."""

    device_id: str
    found_ms: int = 0
    transitions: list[Transition] = field(default_factory=list)
    incidents: list[IncidentFound] = field(default_factory=list)

    def raise_alert(self, rule: Rule, *, at_ms: int, started_at_ms: int, severity: str,
                    evidence: Evidence) -> Episode:
        """A new episode: its id is its natural key, so finding it again gives the same id."""
        episode = Episode(alert_id=alert_id(self.device_id, rule.type, at_ms), triggered_at_ms=at_ms,
                          severity=severity, started_at_ms=started_at_ms, active_ms=at_ms, updated_ms=at_ms)
        self._record("raised", rule, episode, at_ms, evidence)
        return episode

    def update_alert(self, rule: Rule, episode: Episode, *, at_ms: int, evidence: Callable[[], Evidence],
                     severity: str | None = None) -> None:
        """Fresh evidence for an open alert, at most every `update_every_s`; a higher severity at once."""
        escalates = severity is not None and SEVERITY_RANK[severity] > SEVERITY_RANK[episode.severity]
        if not escalates and at_ms - episode.updated_ms < rule.update_every_s * 1000:
            return
        if escalates:
            episode.severity = severity
        episode.updated_ms = at_ms
        self._record("updated", rule, episode, at_ms, evidence())

    def clear_alert(self, rule: Rule, episode: Episode, *, at_ms: int, evidence: Evidence) -> None:
        self._record("cleared", rule, episode, at_ms, evidence)

    def release_alert(self, rule: Rule, episode: Episode, *, at_ms: int) -> None:
        """The rule stops following an episode it never clears (a person resolves it): no event."""
        self._record("released", rule, episode, at_ms, {})

    def open_incident(self, rule: Rule, episode: Episode, *, at_ms: int, evidence: Evidence) -> None:
        episode.incident_opened = True
        self.incidents.append(IncidentFound(rule=rule, alert_id=episode.alert_id,
                                            started_at_ms=episode.started_at_ms, at_ms=at_ms,
                                            found_ms=self.found_ms, evidence=evidence))

    def _record(self, change: Change, rule: Rule, episode: Episode, at_ms: int, evidence: Evidence) -> None:
        self.transitions.append(Transition(change=change, rule=rule, alert_id=episode.alert_id,
                                           severity=episode.severity, triggered_at_ms=episode.triggered_at_ms,
                                           at_ms=at_ms, found_ms=self.found_ms, evidence=evidence))
