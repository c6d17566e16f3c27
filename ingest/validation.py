"""The ingest verdict on one MQTT message: what goes on to Kafka and what is dead-lettered, and why.

Pure function over bytes, the registry entry and a clock reading, so every rejection reason is
unit-tested without a broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError

from ingest.decoding import decode_json
from vigil.telemetry import (
    MAX_FUTURE_S,
    MAX_PAYLOAD_BYTES,
    MAX_READINGS,
    MAX_SEQ,
    METRICS,
    TOPIC_RE,
    DeadLetter,
    Reading,
    RegisteredDevice,
    TelemetryEnvelope,
    TelemetryRecord,
    rfc3339_ms,
    to_ms,
)
from vigil.validation_errors import first_error

# Control characters in device-chosen text (field names) as `\x00`, like repr shows them.
_ESCAPED_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ENVELOPE_FIELDS = frozenset(TelemetryEnvelope.model_fields)
_READING_FIELDS = frozenset(Reading.model_fields)
_NUMBERS = (int, float)


@dataclass(slots=True)
class Verdict:
    """The record to publish (None when the whole message is refused) and every refusal."""

    record: TelemetryRecord | None
    dead_letters: list[DeadLetter] = field(default_factory=list)


def failed(topic: str, payload: bytes, *, now_ms: int, error: BaseException) -> Verdict:
    """The verdict on a message whose handling raised: refused as `internal_error`, naming the error.

    Whatever went wrong is recorded with the message instead of killing the MQTT loop, and the
    message is acknowledged once the dead letter is in Kafka, so it is not redelivered to fail again.
    """
    detail = f"ingest could not handle this message: {type(error).__name__}: {error}"[:1000]
    return _refused(topic, payload, now_ms, "internal_error", detail, _topic_device(topic))


def _topic_device(topic: str) -> str | None:
    match = TOPIC_RE.match(topic)
    return match.group(1) if match else None


def _refused(topic: str, payload: bytes, now_ms: int, reason: str, detail: str,
             device_id: str | None = None, seq: int | None = None) -> Verdict:
    text = payload[:4096].decode("utf-8", errors="replace")
    # A lone surrogate (from an exception's text, say) could not be encoded for Kafka at all.
    detail = detail.encode("utf-8", errors="replace").decode("utf-8")
    return Verdict(None, [DeadLetter(received_at_ms=now_ms, reason=reason, detail=detail, topic=topic,
                                     device_id=device_id, seq=seq, payload=text)])


def _first_error(e: ValidationError) -> tuple[str, str]:
    where, message = first_error(e, whole="payload")
    # A field name is the device's text: show control characters (NUL...) escaped, as repr would.
    return where.translate(_ESCAPED_CONTROLS), message


class _Envelope(NamedTuple):
    """A valid message's fields, its readings still raw."""

    device_id: str
    seq: int
    sent_at_ms: int
    readings: list[Any]


def _envelope(raw: dict[str, Any], topic_device: str) -> _Envelope:
    """The message's fields; `ValidationError` as `TelemetryEnvelope` raises it.

    The usual message (exactly the four fields, each of the right JSON type, its device the
    topic's) is checked here directly: pydantic would accept it unchanged. Anything else goes
    through `TelemetryEnvelope`, which accepts or refuses it and says why.
    """
    if raw.keys() == _ENVELOPE_FIELDS:
        device_id, seq, sent_at, readings = raw["device_id"], raw["seq"], raw["sent_at"], raw["readings"]
        # Equal to the topic's, the device id matches DEVICE_ID_PATTERN as the topic's does.
        if (device_id == topic_device and type(seq) is int and 0 <= seq <= MAX_SEQ and type(readings) is list
                and 0 < len(readings) <= MAX_READINGS and type(sent_at) is str):
            sent_at_ms = rfc3339_ms(sent_at)
            if sent_at_ms is not None:
                return _Envelope(device_id, seq, sent_at_ms, readings)
    envelope = TelemetryEnvelope.model_validate(raw)
    return _Envelope(envelope.device_id, envelope.seq, to_ms(envelope.sent_at), envelope.readings)


def _reading(item: Any) -> tuple[int, str, int | float]:
    """A reading as (ts in epoch ms, metric, value); `ValidationError` as `Reading` raises it.

    Checked directly when it is exactly `ts`, `metric` and `value` of the right JSON types and a
    valid time stamp; anything else goes through `Reading`, which also says what is wrong.
    """
    if type(item) is dict and item.keys() == _READING_FIELDS:
        ts, metric, value = item["ts"], item["metric"], item["value"]
        # `type(...) in`: a JSON true or false is a bool, which StrictInt refuses.
        if type(ts) is str and type(metric) is str and type(value) in _NUMBERS:
            ts_ms = rfc3339_ms(ts)
            if ts_ms is not None:
                return ts_ms, metric, value
    reading = Reading.model_validate(item)
    return to_ms(reading.ts), reading.metric, reading.value


def judge(
    topic: str,
    payload: bytes,
    *,
    now_ms: int,
    retention_ms: int,
    lookup: Callable[[str], RegisteredDevice | None],
) -> Verdict:
    """Validate one message per docs/devices.md."""

    def refuse(reason: str, detail: str, device_id: str | None = None, seq: int | None = None) -> Verdict:
        return _refused(topic, payload, now_ms, reason, detail, device_id, seq)

    topic_device = _topic_device(topic)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return refuse("oversize", f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}",
                      topic_device)
    if topic_device is None:
        return refuse("bad_topic", "topic must be devices/{device_id}/telemetry")
    try:
        raw = decode_json(payload)
    except ValueError as e:
        return refuse("invalid_json", f"not UTF-8 JSON: {e}", topic_device)
    if not isinstance(raw, dict):
        return refuse("schema", "payload: must be a JSON object", topic_device)
    try:
        envelope = _envelope(raw, topic_device)
    except ValidationError as e:
        where, msg = _first_error(e)
        return refuse("schema", f"{where}: {msg}", topic_device)
    device_id, seq = envelope.device_id, envelope.seq
    if device_id != topic_device:
        return refuse("device_mismatch", f"device_id: {device_id!r} differs from the topic's {topic_device!r}",
                      topic_device, seq)
    device = lookup(device_id)
    if device is None:
        return refuse("unknown_device", f"device_id: {device_id!r} is not registered", device_id, seq)
    if not device.enabled:
        return refuse("disabled_device", f"device_id: {device_id!r} is disabled", device_id, seq)

    kept: list[tuple[int, str, float]] = []
    dead: list[DeadLetter] = []
    oldest_ms = now_ms - retention_ms
    newest_ms = now_ms + MAX_FUTURE_S * 1000
    for index, item in enumerate(envelope.readings):
        reason, detail = None, ""
        try:
            ts_ms, metric, value = _reading(item)
        except ValidationError as e:
            where, msg = _first_error(e)
            reason, detail = "bad_reading", f"readings.{index}.{where}: {msg}"
        else:
            spec = METRICS.get(metric)
            if spec is None:
                reason, detail = "unknown_metric", f"readings.{index}.metric: {metric!r} is not a metric"
            elif not spec.low <= value <= spec.high:
                reason, detail = ("out_of_range", f"readings.{index}.value: {value} {spec.unit} is "
                                  f"outside {spec.low}..{spec.high} for {spec.name}")
            elif spec.flag and value not in (0, 1):
                reason, detail = ("out_of_range", f"readings.{index}.value: {value} is not 0 or 1 for {spec.name}")
            elif ts_ms > newest_ms:
                reason, detail = "future_ts", f"readings.{index}.ts: more than {MAX_FUTURE_S} s in the future"
            elif ts_ms < oldest_ms:
                reason, detail = "too_old", f"readings.{index}.ts: older than the retention window"
            else:
                kept.append((ts_ms, metric, float(value)))
        if reason:
            dead.append(DeadLetter(received_at_ms=now_ms, reason=reason, detail=detail, topic=topic,
                                   device_id=device_id, seq=seq, payload=json.dumps(item)[:4096]))
    record = TelemetryRecord(device_id=device_id, member_id=device.member_id, seq=seq,
                             sent_at_ms=envelope.sent_at_ms, received_at_ms=now_ms, readings=kept)
    return Verdict(record, dead)
