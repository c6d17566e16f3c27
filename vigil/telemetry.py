"""The telemetry vocabulary: metrics with their physical ranges, the MQTT payload, the Kafka record.

Pure: no I/O. Ingest validates with it, streams and simulators speak it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictFloat, StrictInt, WithJsonSchema

DEVICE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
TOPIC_RE = re.compile(r"^devices/([A-Za-z0-9_-]{1,64})/telemetry$")
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_READINGS = 1000
MAX_SEQ = 2**63 - 1  # a signed 64-bit integer, as the database stores it
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

# RFC 3339 section 5.6 `date-time`, nothing looser: `T` between date and time, seconds, and `Z` or a
# `+hh:mm` offset (ABNF letters are case-insensitive, so `t` and `z` too). ASCII digits only.
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_RFC3339_HINT = "must be an RFC 3339 date-time string with a time zone, e.g. 2026-11-22T10:00:00Z"


def parse_rfc3339(value: object) -> datetime:
    """The aware datetime an RFC 3339 `date-time` string names; ValueError for anything else.

    The contract promises RFC 3339, and a lenient parser (pydantic's accepts unix numbers, numeric
    strings, a missing time zone's cousin `+0200`, minutes without seconds) would let a device's
    wrong clock format through as some other instant. Fractions beyond microseconds are truncated.
    """
    if not isinstance(value, str):
        raise ValueError(f"{_RFC3339_HINT}, not a JSON {_json_type(value)}")
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        raise ValueError(_RFC3339_HINT)
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    if second == "60":
        # Allowed by RFC 3339, not representable here; devices on NTP/unix time never send one.
        raise ValueError("leap seconds (:60) are not accepted")
    try:
        if zulu:
            zone = UTC
        else:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError(f"offset {sign}{off_h}:{off_m} is out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
        micro = int((fraction or "").ljust(6, "0")[:6])
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=zone)
    except ValueError as e:
        raise ValueError(f"{_RFC3339_HINT} ({e})") from None


def rfc3339_ms(value: str) -> int | None:
    """`to_ms(parse_rfc3339(value))` without building a datetime; None for anything `parse_rfc3339` refuses.

    Ingest converts every reading's time stamp: this is its hot path. It takes the same grammar
    and range checks and leaves saying why a value is wrong to `parse_rfc3339`.
    """
    match = _RFC3339_RE.fullmatch(value)
    if match is None:
        return None
    _, _, _, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    hours, minutes, seconds = int(hour), int(minute), int(second)
    days = _epoch_days(value[:10])
    if days is None or hours > 23 or minutes > 59 or seconds > 59:
        return None
    offset_ms = 0
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset_ms = (int(off_h) * 60 + int(off_m)) * 60_000
        if sign == "-":
            offset_ms = -offset_ms
    millis = int(fraction[:3].ljust(3, "0")) if fraction else 0
    return ((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000 + millis - offset_ms


@functools.lru_cache(maxsize=1024)
def _epoch_days(day: str) -> int | None:
    """Days since 1970-01-01 of a `YYYY-MM-DD` the grammar matched; None when there is no such day.

    Cached: the readings a device sends fall on a few days.
    """
    try:
        return date(int(day[:4]), int(day[5:7]), int(day[8:10])).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


DeviceId = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
Number = StrictInt | StrictFloat
Rfc3339DateTime = Annotated[datetime, PlainValidator(parse_rfc3339),
                            WithJsonSchema({"type": "string", "format": "date-time"})]


class Reading(BaseModel):
    """One measurement as a device sends it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: Rfc3339DateTime
    metric: str
    value: Number


class TelemetryEnvelope(BaseModel):
    """The MQTT payload with its readings left raw, so one bad reading cannot sink the message."""

    model_config = ConfigDict(extra="forbid")

    device_id: DeviceId
    seq: Annotated[StrictInt, Field(ge=0, le=MAX_SEQ)]
    sent_at: Rfc3339DateTime
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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()


def to_ms(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp times 1000 can land a hair below the millisecond.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
