"""A simulated device: its normal signal, the scenarios laid over it, and the messages it sends."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.scenarios import Kind, Scenario
from simulators.signals import HomeSensor, WearableSignal
from vigil.telemetry import METRICS

# Decimal places a real device reports; every other metric (flags, counts, bpm, %) is an integer.
_DIGITS = {"skin_temp": 1, "co_ppm": 1, "gas_lel": 1, "temperature": 1}


def tidy(values: dict[str, float]) -> dict[str, int | float]:
    """Values clamped to their physical range and rounded as a device would report them."""
    tidied: dict[str, int | float] = {}
    for metric, value in values.items():
        spec = METRICS[metric]
        clamped = min(max(value, spec.low), spec.high)
        digits = _DIGITS.get(metric, 0)
        tidied[metric] = round(clamped, digits) if digits else round(clamped)
    return tidied


def rfc3339(moment: datetime, timespec: str = "seconds") -> str:
    """A UTC time the way the contract's examples write it, with a `Z`."""
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message, ready to publish."""

    device_id: str
    seq: int
    payload: dict[str, Any]

    @property
    def topic(self) -> str:
        return f"devices/{self.device_id}/telemetry"

    @property
    def reading_count(self) -> int:
        return len(self.payload["readings"])

    def encode(self) -> bytes:
        """Compact JSON: a large batch must stay under the 64 KiB payload limit."""
        return json.dumps(self.payload, separators=(",", ":")).encode()


@dataclass(slots=True, kw_only=True)
class SimulatedDevice:
    """One device: samples its signal on a fixed event-time grid and batches samples into messages."""

    device_id: str
    kind: Kind
    signal: WearableSignal | HomeSensor
    rng: random.Random
    sample_interval_s: int
    samples_per_message: int
    next_sample_at: datetime
    seq: int = 0
    injections: list[tuple[Scenario, datetime]] = field(default_factory=list)

    @classmethod
    def create(cls, *, device_id: str, kind: Kind, rng: random.Random, sample_interval_s: int,
               samples_per_message: int, first_sample_at: datetime) -> SimulatedDevice:
        signal = WearableSignal.create(rng) if kind == "wearable" else HomeSensor.create(rng)
        return cls(device_id=device_id, kind=kind, signal=signal, rng=rng, sample_interval_s=sample_interval_s,
                   samples_per_message=samples_per_message, next_sample_at=first_sample_at)

    @property
    def due_at(self) -> datetime:
        """Event time of the last sample in the next message: it can be sent once that time has come."""
        return self.next_sample_at + timedelta(seconds=self.sample_interval_s * (self.samples_per_message - 1))

    def inject(self, scenario: Scenario, start: datetime) -> None:
        """Lay `scenario` over this device's signal from event time `start`."""
        if scenario.kind != self.kind:
            raise ValueError(f"scenario {scenario.name!r} is for a {scenario.kind}, {self.device_id} is a {self.kind}")
        self.injections.append((scenario, start))

    def _sample(self, at: datetime) -> dict[str, int | float]:
        values = self.signal.sample(at, self.sample_interval_s)
        for scenario, start in self.injections:
            scenario.overlay(values, elapsed_s=(at - start).total_seconds(),
                             interval_s=self.sample_interval_s, rng=self.rng)
        return tidy(values)

    def next_message(self, sent_at: datetime) -> Message:
        """The next message, its samples taken on the device's grid; `sent_at` is the wall time of sending."""
        readings = []
        step = timedelta(seconds=self.sample_interval_s)
        for _ in range(self.samples_per_message):
            ts = rfc3339(self.next_sample_at)
            readings.extend({"ts": ts, "metric": metric, "value": value}
                            for metric, value in self._sample(self.next_sample_at).items())
            self.next_sample_at += step
        self.seq += 1
        payload = {"device_id": self.device_id, "seq": self.seq, "sent_at": rfc3339(sent_at, "milliseconds"),
                   "readings": readings}
        return Message(self.device_id, self.seq, payload)
