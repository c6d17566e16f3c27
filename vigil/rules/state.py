"""What the detection rules remember about one device between batches.

Plain JSON-friendly data so the Faust table's changelog can carry it (see `vigil.rules.lateness`
for what each part is for). Its size is bounded: the buffer holds the lateness allowance's readings
(at most `MAX_BUFFERED_READINGS`), the checkpoint each rule's run and the per-minute aggregates of the
longest minute window (and, for a busy device, `head`: the same after the buffer), `announced` the
changes found within the allowance.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

Reading = tuple[int, str, float]


@dataclass(slots=True)
class DeviceState:
    """A checkpoint of every rule's state, the readings after it, and what was already sent."""

    # The newest reading time heard from the device, and the time before which nothing is judged
    # any more: the checkpoint holds every reading before `settled_ms`, the buffer every one after.
    watermark_ms: int = 0
    settled_ms: int = 0
    checkpoint: dict = field(default_factory=dict)
    buffer: list[Reading] = field(default_factory=list)
    # Changes and incidents sent (their key -> the reading time at which they were found).
    announced: dict[str, int] = field(default_factory=dict)
    # Alert type -> [alert id, severity, triggered_at_ms, id of the episode it stands for]: what the
    # alerts service holds open (see `vigil.rules.announce`).
    told: dict[str, list] = field(default_factory=dict)
    # Which rules judged last: a change keeps open alerts open (see `vigil.rules.lateness`).
    rules_digest: str | None = None
    # Every rule's state after the buffer too (the checkpoint's shape), so that readings arriving in
    # order go on from it instead of replaying the buffer; None (a state saved before heads were kept,
    # or just after a care plan change) makes the next call replay the buffer once.
    head: dict | None = None
    # How many of the buffer's readings are of each metric (a count may be 0), kept in memory only:
    # a busy device's buffer holds up to 2,000 readings, too many to read through for each batch.
    # None: not counted yet (the next batch counts them).
    buffer_metrics: Counter[str] | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "watermark_ms": self.watermark_ms,
            "settled_ms": self.settled_ms,
            "checkpoint": self.checkpoint,
            # Tuples as they are: JSON writes them as arrays, and the table's in-memory copy keeps
            # them, so the next batch need not convert a busy device's thousand-odd readings again.
            "buffer": self.buffer,
            "announced": dict(self.announced),
            "told": {kind: list(known) for kind, known in self.told.items()},
            "rules_digest": self.rules_digest,
            "head": self.head,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> DeviceState:
        if not data:
            return cls()
        if "checkpoint" not in data:
            return _from_first_version(data)
        return cls(
            watermark_ms=data["watermark_ms"],
            settled_ms=data["settled_ms"],
            checkpoint=data["checkpoint"],
            buffer=_readings(data["buffer"]),
            announced=dict(data["announced"]),
            told={kind: list(known) for kind, known in data["told"].items()},
            rules_digest=data.get("rules_digest"),
            head=data.get("head"),
        )


def _readings(saved: list) -> list[Reading]:
    """The buffer of a saved state: as kept in memory (tuples), or as read back from JSON (lists)."""
    if not saved or isinstance(saved[0], tuple):
        return list(saved)
    return [(int(ts), metric, float(value)) for ts, metric, value in saved]


def _from_first_version(data: dict) -> DeviceState:
    """A state saved before checkpoints: keep its open alerts (so they clear) and its minutes.

    Everything older than its watermark counts as settled; runs in progress start again.
    """
    from vigil.rules.catalog import DEFAULT_RULES

    severities = {rule.type: getattr(rule, "severity", "high") for rule in DEFAULT_RULES}
    watermark = data.get("watermark_ms", 0)
    rules, told = {}, {}
    for kind, episode in data.get("open", {}).items():
        severity = severities.get(kind, "high")
        triggered = episode["triggered_at_ms"]
        rules[kind] = {"episode": {"alert_id": episode["alert_id"], "triggered_at_ms": triggered,
                                   "severity": severity, "started_at_ms": triggered, "active_ms": triggered,
                                   "updated_ms": triggered, "incident_opened": False}}
        told[kind] = [episode["alert_id"], severity, triggered, episode["alert_id"]]
    judged = max(data.get("evaluated_minute", {}).values(), default=None)
    minutes = {"buckets": data.get("minutes", {}), "judged_through": judged}
    return DeviceState(watermark_ms=watermark, settled_ms=watermark,
                       checkpoint={"minutes": minutes, "rules": rules}, told=told)
