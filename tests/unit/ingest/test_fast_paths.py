"""Ingest's fast paths decide exactly as the pydantic models and `parse_rfc3339` do.

`judge` checks the usual message and reading directly and `rfc3339_ms` converts a time stamp
without a datetime; anything unusual goes through the models, which also word the refusals. Each
test here compares them with that slower way on many generated inputs, good and bad.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from ingest.validation import Verdict, judge
from tests.unit.ingest.test_validation import NOT_RFC3339, NOW_MS, REGISTRY, RETENTION_MS, TOPIC
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
    parse_rfc3339,
    rfc3339_ms,
    to_ms,
)
from vigil.validation_errors import first_error

# -- time stamps ----------------------------------------------------------------------------------

# Each part of an RFC 3339 date-time, valid and not: every combination is a case.
YEARS = ["2026", "0000", "0001", "1969", "1970", "9999", "2024"]
MONTHS = ["01", "02", "11", "12", "00", "13"]
DAYS = ["01", "22", "28", "29", "30", "31", "32", "00"]
SEPARATORS = ["T", "t", " "]
HOURS = ["00", "10", "23", "24"]
MINUTES = ["00", "59", "60"]
SECONDS = ["00", "59", "60", "61"]
FRACTIONS = ["", ".", ".1", ".12", ".123", ".1239", ".999999999", ".12a"]
ZONES = ["Z", "z", "+00:00", "-00:00", "+02:00", "-05:30", "+23:59", "-23:59", "+24:00", "+02:60", "+0200", "+02",
         ""]


def slow_ms(value: str) -> int | None:
    """What the datetime path makes of a time stamp: epoch ms, None when it refuses it."""
    try:
        return to_ms(parse_rfc3339(value))
    except ValueError:
        return None


def generated_time_stamps(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(part) for part in (YEARS, "-", MONTHS, "-", DAYS, SEPARATORS, HOURS, ":", MINUTES, ":",
                                                  SECONDS, FRACTIONS, ZONES))
            for _ in range(count)]


def test_fast_time_stamps_agree_with_the_datetime_path_on_generated_ones():
    stamps = generated_time_stamps(30_000, seed=3)
    accepted = [s for s in stamps if slow_ms(s) is not None]
    assert 500 < len(accepted) < len(stamps) - 500  # both outcomes are well represented

    assert [rfc3339_ms(s) for s in stamps] == [slow_ms(s) for s in stamps]


@pytest.mark.parametrize("ts", [p for p in NOT_RFC3339 if isinstance(p.values[0], str)])
def test_what_parse_rfc3339_refuses_the_fast_path_refuses(ts):
    assert rfc3339_ms(ts) is None


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1969-12-31T23:59:59.999Z", -1),
        ("1970-01-01T01:00:00+01:00", 0),
        ("0001-01-01T00:00:00Z", -62_135_596_800_000),
        ("9999-12-31T23:59:59.999999-23:59", 253_402_387_139_999),  # 10000-01-01T23:58:59.999Z
        ("2024-02-29T12:00:00.5Z", 1_709_208_000_500),
    ],
)
def test_fast_time_stamps_at_the_edges(ts, ms):
    assert rfc3339_ms(ts) == slow_ms(ts) == ms


# -- whole messages -------------------------------------------------------------------------------

def reference_judge(topic: str, payload: bytes, *, now_ms: int, retention_ms: int,
                    lookup: Callable[[str], RegisteredDevice | None]) -> Verdict:
    """The verdict as ingest reached it before its fast paths: every message and reading through the models."""
    from ingest.decoding import decode_json

    def refuse(reason: str, detail: str, device_id: str | None = None, seq: int | None = None) -> Verdict:
        return Verdict(None, [DeadLetter(received_at_ms=now_ms, reason=reason, detail=detail, topic=topic,
                                         device_id=device_id, seq=seq,
                                         payload=payload[:4096].decode("utf-8", errors="replace"))])

    def where_what(e: ValidationError) -> tuple[str, str]:
        where, message = first_error(e, whole="payload")
        return where.translate({c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}), message

    match = TOPIC_RE.match(topic)
    topic_device = match.group(1) if match else None
    if len(payload) > MAX_PAYLOAD_BYTES:
        return refuse("oversize", f"payload is {len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}", topic_device)
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
        where, msg = where_what(e)
        return refuse("schema", f"{where}: {msg}", topic_device)
    if envelope.device_id != topic_device:
        return refuse("device_mismatch", f"device_id: {envelope.device_id!r} differs from the topic's "
                      f"{topic_device!r}", topic_device, envelope.seq)
    device = lookup(envelope.device_id)
    if device is None:
        return refuse("unknown_device", f"device_id: {envelope.device_id!r} is not registered", envelope.device_id,
                      envelope.seq)
    if not device.enabled:
        return refuse("disabled_device", f"device_id: {envelope.device_id!r} is disabled", envelope.device_id,
                      envelope.seq)
    kept, dead = [], []
    for index, item in enumerate(envelope.readings):
        reason, detail = None, ""
        try:
            reading = Reading.model_validate(item)
        except ValidationError as e:
            where, msg = where_what(e)
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
            elif ts_ms > now_ms + MAX_FUTURE_S * 1000:
                reason, detail = "future_ts", f"readings.{index}.ts: more than {MAX_FUTURE_S} s in the future"
            elif ts_ms < now_ms - retention_ms:
                reason, detail = "too_old", f"readings.{index}.ts: older than the retention window"
            else:
                kept.append((ts_ms, reading.metric, float(reading.value)))
        if reason:
            dead.append(DeadLetter(received_at_ms=now_ms, reason=reason, detail=detail, topic=topic,
                                   device_id=envelope.device_id, seq=envelope.seq, payload=json.dumps(item)[:4096]))
    return Verdict(TelemetryRecord(device_id=envelope.device_id, member_id=device.member_id, seq=envelope.seq,
                                   sent_at_ms=to_ms(envelope.sent_at), received_at_ms=now_ms, readings=kept), dead)


# JSON values of every type, some of them nearly right for one field or another.
ODD_VALUES = [None, True, False, 0, 1, -1, 17, 2**63 - 1, 2**63, 2**64 - 1, 72.5, 0.5, 1e300, "", "x", "17",
              "wb-000123", "wb-000124", "wb 000123", "heart_rate", "2026-11-22T10:00:00Z", [], [1], {}, {"a": 1},
              [{"ts": "2026-11-22T10:00:00Z", "metric": "battery", "value": 80}]]
# Around the fixed clock: now, 5 min ahead and past it, the retention window's edge and past it.
NEAR_NOW = ["2026-11-22T10:00:00Z", "2026-11-22T10:05:06Z", "2026-11-22T10:05:07Z", "2026-10-23T10:00:06Z",
            "2026-10-23T10:00:05.999Z", "2026-11-22T12:00:00+02:00"]
ANY_TIME = generated_time_stamps(200, seed=5)


def time_stamp(rng: random.Random) -> str:
    return rng.choice(NEAR_NOW) if rng.random() < 0.7 else rng.choice(ANY_TIME)


def mutated_reading(rng: random.Random) -> object:
    reading: dict = {"ts": time_stamp(rng), "metric": rng.choice([*METRICS, "heartrate"]),
                     "value": rng.choice([0, 1, 2, 21.5, 72, 300, -60, 0.5, True, 2**64 - 1])}
    roll = rng.random()
    if roll < 0.1:
        del reading[rng.choice(list(reading))]
    elif roll < 0.2:
        reading[rng.choice(["unit", "ts", "metric", "value"])] = rng.choice(ODD_VALUES)
    elif roll < 0.25:
        reading["unit"] = "bpm"
    elif roll < 0.3:
        return rng.choice(ODD_VALUES)
    return reading


def mutated_message(rng: random.Random) -> dict:
    message: dict = {"device_id": "wb-000123", "seq": rng.choice([0, 17, 2**63 - 1]),
                     "sent_at": time_stamp(rng),
                     "readings": [mutated_reading(rng) for _ in range(rng.randint(1, 4))]}
    roll = rng.random()
    if roll < 0.1:
        del message[rng.choice(list(message))]
    elif roll < 0.3:
        message[rng.choice(list(message))] = rng.choice(ODD_VALUES)
    elif roll < 0.35:
        message["firmware"] = "1.2.3"
    elif roll < 0.4:
        message = {key: message[key] for key in reversed(list(message))}
    return message


@pytest.mark.parametrize("seed", range(4))
def test_generated_messages_get_the_verdict_the_models_give(seed):
    rng = random.Random(seed)
    topics = [TOPIC, TOPIC, TOPIC, "devices/wb-000999/telemetry", "devices/wb-000555/telemetry"]
    reasons = set()
    for _ in range(2500):
        message = mutated_message(rng)
        topic = rng.choice(topics)
        if "wb-000123" not in topic and message.get("device_id") == "wb-000123":
            message["device_id"] = topic.split("/")[1]
        payload = json.dumps(message).encode()

        expected = reference_judge(topic, payload, now_ms=NOW_MS, retention_ms=RETENTION_MS, lookup=REGISTRY.get)
        verdict = judge(topic, payload, now_ms=NOW_MS, retention_ms=RETENTION_MS, lookup=REGISTRY.get)

        assert verdict == expected, payload
        reasons.update(d.reason for d in verdict.dead_letters)
        if verdict.record is not None and verdict.record.readings:
            reasons.add("accepted")
    # The generator reaches every outcome, or the comparison would prove little.
    assert reasons >= {"accepted", "schema", "device_mismatch", "unknown_device", "disabled_device", "bad_reading",
                       "unknown_metric", "out_of_range", "future_ts", "too_old"}


def test_a_ten_reading_message_gets_the_verdict_the_models_give(payload):
    message = payload("contract_example")
    message["readings"] = [copy.deepcopy(message["readings"][0]) for _ in range(10)]
    raw = json.dumps(message).encode()

    assert judge(TOPIC, raw, now_ms=NOW_MS, retention_ms=RETENTION_MS, lookup=REGISTRY.get) == reference_judge(
        TOPIC, raw, now_ms=NOW_MS, retention_ms=RETENTION_MS, lookup=REGISTRY.get)
