"""When an alert's episode becomes an incident (the incident each rule may open, docs/rules.md), once per episode.

Judged after every instant of event time, over the open episodes of the rules that describe an
`Incident`: the condition has lasted long enough, or a partner alert is open on the same device.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import asdict
from typing import Protocol

from vigil.rules.episodes import Episode, Evidence, Outbox
from vigil.rules.spec import Rule
from vigil.timefmt import ms_text

_INCIDENT_NS = uuid.UUID("8b0e2f4c-6a3d-4c1e-9f57-1d2b3c4d5e6f")


class Judged(Protocol):
    """What incidents need of an evaluator: its rule, its open episode and its current evidence."""

    rule: Rule
    episode: Episode | None

    def evidence(self) -> Evidence: ...


def incident_id(device_id: str, kind: str, started_at_ms: int) -> str:
    """The natural id of one incident: the same loss found twice is one incident."""
    return str(uuid.uuid5(_INCIDENT_NS, f"{device_id}|{kind}|{started_at_ms}"))


def judge_incidents(candidates: list[Judged], evaluators: Mapping[str, Judged], *, at_ms: int, out: Outbox) -> None:
    """Open the incident of each open episode that now qualifies and has not opened one yet."""
    for evaluator in candidates:
        episode = evaluator.episode
        if episode is None or episode.incident_opened:
            continue
        spec = evaluator.rule.incident
        partners = {kind: other.episode.alert_id for kind in spec.or_with
                    if (other := evaluators.get(kind)) is not None and other.episode is not None}
        lasted_ms = episode.active_ms - episode.started_at_ms
        if lasted_ms < spec.after_s * 1000 and not partners:
            continue
        out.open_incident(evaluator.rule, episode, at_ms=at_ms, evidence={
            "incident": asdict(spec) | {"or_with": list(spec.or_with)},
            "condition_met_at": ms_text(at_ms),
            "lasted_s": lasted_ms / 1000,
            "with_open_alerts": partners,
            "readings": evaluator.evidence(),
        })
