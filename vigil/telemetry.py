"""The telemetry vocabulary: metrics with their physical ranges, the MQTT payload, the Kafka record.

Pure: no I/O. Ingest validates with it, streams and simulators speak it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt

DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
TOPIC_RE = re.compile(r"^devices/([A-Za-z0-9_-]{1,64})/telemetry$")
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_READINGS = 1000
MAX_FUTURE_S = 300


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSpec:
    """A metric's unit, the physically possible range of its values, and the device kind that sends it."""

    name: str
    unit: str
    low: float
    high: float
    source: Literal["wearable", "home", "any"]
    flag: bool = False


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(name="heart_rate", unit="beats/min", low=20, high=250, source="wearable"),
        MetricSpec(name="spo2", unit="%", low=50, high=100, source="wearable"),
        MetricSpec(name="skin_temp", unit="°C", low=25, high=45, source="wearable"),
        MetricSpec(name="steps", unit="steps since previous reading", low=0, high=1000, source="wearable"),
        MetricSpec(name="worn", unit="flag", low=0, high=1, source="wearable", flag=True),
        MetricSpec(name="fall", unit="flag", low=0, high=1, source="wearable", flag=True),
        MetricSpec(name="battery", unit="%", low=0, high=100, source="any"),
        MetricSpec(name="smoke", unit="flag", low=0, high=1, source="home", flag=True),
        MetricSpec(name="co_ppm", unit="ppm", low=0, high=10000, source="home"),
        MetricSpec(name="gas_lel", unit="% LEL", low=0, high=100, source="home"),
        MetricSpec(name="water_leak", unit="flag", low=0, high=1, source="home", flag=True),
        MetricSpec(name="temperature", unit="°C", low=-50, high=150, source="home"),
        MetricSpec(name="humidity", unit="%", low=0, high=100, source="home"),
        MetricSpec(name="arc_events", unit="events since previous reading", low=0, high=10000, source="home"),
        MetricSpec(name="door_open", unit="flag", low=0, high=1, source="home", flag=True),
        MetricSpec(name="motion", unit="flag", low=0, high=1, source="home", flag=True),
    )
}

DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
Number = StrictInt | StrictFloat


class Reading(BaseModel):
    """One measurement as a device sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: AwareDatetime
    metric: str
    value: Number


class TelemetryEnvelope(BaseModel):
    """The MQTT payload with its readings left raw, so one bad reading cannot sink the message."""

    model_config = ConfigDict(extra="forbid")

    device_id: DeviceId
    seq: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
    sent_at: AwareDatetime
    # Items stay untyped here: each reading is judged on its own so one bad one costs only itself.
    readings: Annotated[list[Any], Field(min_length=1, max_length=MAX_READINGS)]


class TelemetryRecord(BaseModel):
    """What ingest puts on the telemetry topic: one accepted MQTT message, readings in epoch ms.

    Epoch milliseconds keep the hot path in the stream workers free of date parsing.
    """

    device_id: str
    member_id: str | None
    seq: int
    sent_at_ms: int
    received_at_ms: int
    readings: list[tuple[int, str, float]]


@dataclass(frozen=True, slots=True)
class RegisteredDevice:
    """What ingest needs to know of a device: whose it is and whether it may send."""

    device_id: str
    member_id: str | None
    enabled: bool


class DeadLetter(BaseModel):
    """A refused message or reading, with the reason a partner's engineer can act on."""

    received_at_ms: int
    reason: str
    detail: str
    topic: str
    device_id: str | None = None
    seq: int | None = None
    payload: str = ""


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
