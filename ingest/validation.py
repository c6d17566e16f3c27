"""The ingest verdict on one MQTT message: what goes on to Kafka and what is dead-lettered, and why.

Pure function over bytes, the registry entry and a clock reading, so every rejection reason is
unit-tested without a broker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from ingest.decoding import decode_json
from vigil.telemetry import (
    MAX_FUTURE_S,
    MAX_PAYLOAD_BYTES,
    METRICS,
    TOPIC_RE,
    DeadLetter,
    Reading,
    RegisteredDevice,
    TelemetryEnvelope,
    TelemetryRecord,
    to_ms,
)
from vigil.validation_errors import first_error

# Control characters in device-chosen text (field names) as `\x00`, like repr shows them.
_ESCAPED_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


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
        envelope = TelemetryEnvelope.model_validate(raw)
    except ValidationError as e:
        where, msg = _first_error(e)
        return refuse("schema", f"{where}: {msg}", topic_device)
    if envelope.device_id != topic_device:
        return refuse("device_mismatch",
                      f"device_id: {envelope.device_id!r} differs from the topic's {topic_device!r}",
                      topic_device, envelope.seq)
    device = lookup(envelope.device_id)
    if device is None:
        return refuse("unknown_device", f"device_id: {envelope.device_id!r} is not registered",
                      envelope.device_id, envelope.seq)
    if not device.enabled:
        return refuse("disabled_device", f"device_id: {envelope.device_id!r} is disabled",
                      envelope.device_id, envelope.seq)

    kept: list[tuple[int, str, float]] = []
    dead: list[DeadLetter] = []
    oldest_ms = now_ms - retention_ms
    newest_ms = now_ms + MAX_FUTURE_S * 1000
    for index, item in enumerate(envelope.readings):
        reason, detail = None, ""
        try:
            reading = Reading.model_validate(item)
        except ValidationError as e:
            where, msg = _first_error(e)
            reason, detail = "bad_reading", f"readings.{index}.{where}: {msg}"
        else:
            spec = METRICS.get(reading.metric)
            ts_ms = to_ms(reading.ts)
            if spec is None:
                reason, detail = "unknown_metric", f"readings.{index}.metric: {reading.metric!r} is not a metric"
            elif not spec.low <= reading.value <= spec.high:
                reason, detail = ("out_of_range", f"readings.{index}.value: {reading.value} {spec.unit} is "
                                  f"outside {spec.low}..{spec.high} for {spec.name}")
            elif spec.flag and reading.value not in (0, 1):
                reason, detail = ("out_of_range",
                                  f"readings.{index}.value: {reading.value} is not 0 or 1 for {spec.name}")
            elif ts_ms > newest_ms:
                reason, detail = "future_ts", f"readings.{index}.ts: more than {MAX_FUTURE_S} s in the future"
            elif ts_ms < oldest_ms:
                reason, detail = "too_old", f"readings.{index}.ts: older than the retention window"
            else:
                kept.append((ts_ms, reading.metric, float(reading.value)))
        if reason:
            dead.append(DeadLetter(received_at_ms=now_ms, reason=reason, detail=detail, topic=topic,
                                   device_id=envelope.device_id, seq=envelope.seq,
                                   payload=json.dumps(item)[:4096]))
    record = TelemetryRecord(device_id=envelope.device_id, member_id=device.member_id, seq=envelope.seq,
                             sent_at_ms=to_ms(envelope.sent_at), received_at_ms=now_ms, readings=kept)
    return Verdict(record, dead)
