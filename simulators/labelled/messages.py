"""A labelled scenario as MQTT messages: samples grouped per `message_s` of event time, delivered in its order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from simulators.devices import rfc3339
from simulators.labelled.model import Scenario


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message of a scenario: its sequence number, the sample offsets it carries and its payload."""

    seq: int
    offsets: tuple[int, ...]
    payload: dict[str, Any]

    @property
    def first_s(self) -> int:
        return self.offsets[0]

    def encode(self) -> bytes:
        return json.dumps(self.payload, separators=(",", ":")).encode()


def plan_messages(scenario: Scenario, *, device_id: str, start: datetime, sent_at: datetime,
                  seed: int = 0) -> list[PlannedMessage]:
    """The scenario's messages in event-time order, `seq` counting from 1."""
    groups: dict[int, list] = {}
    for sample in scenario.samples(seed):
        groups.setdefault(sample.t_s // scenario.message_s, []).append(sample)
    messages = []
    for seq, key in enumerate(sorted(groups), start=1):
        samples = groups[key]
        readings = [{"ts": rfc3339(start + timedelta(seconds=s.t_s)), "metric": metric, "value": value}
                    for s in samples for metric, value in s.values.items()]
        payload = {"device_id": device_id, "seq": seq, "sent_at": rfc3339(sent_at, "milliseconds"),
                   "readings": readings}
        messages.append(PlannedMessage(seq, tuple(s.t_s for s in samples), payload))
    return messages


def delivery_order(scenario: Scenario, messages: list[PlannedMessage]) -> list[int]:
    """Indices into `messages` in the order they are published; a redelivered one appears twice."""
    return scenario.delivery.order([m.first_s for m in messages])


def carrying(messages: list[PlannedMessage], first_s: float, last_s: float) -> list[int]:
    """Indices of the messages holding any sample with an offset from `first_s` to `last_s`."""
    return [i for i, m in enumerate(messages) if any(first_s <= t <= last_s for t in m.offsets)]
