"""Ingest's verdict on one MQTT message, reason by reason (docs/devices.md).

Every refusal names its reason code and, where there is one, the field; a bad reading costs only
itself, the good readings of the same message go on.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ingest.validation import Verdict, failed, judge
from vigil.telemetry import DeadLetter, RegisteredDevice, TelemetryRecord

TOPIC = "devices/wb-000123/telemetry"
# The fixed clock: 2026-11-22T10:00:06Z, a second after the contract example was sent.
NOW_MS = 1_795_341_606_000
MINUTE_MS = 60_000
RETENTION_MS = 30 * 86_400_000
T_10_00_MS = 1_795_341_600_000  # 2026-11-22T10:00:00Z
REGISTRY = {
    "wb-000123": RegisteredDevice("wb-000123", "mem-42", enabled=True),
    "wb-000999": RegisteredDevice("wb-000999", "mem-7", enabled=False),
}
# The two readings of the contract example, as ingest hands them on.
EXAMPLE_READINGS = [(T_10_00_MS, "heart_rate", 72.0), (T_10_00_MS, "steps", 0.0)]

# The contract's metric table, copied by hand so that a drifting METRICS fails here.
CONTRACT_RANGES = {
    "heart_rate": (20, 250),
    "spo2": (50, 100),
    "skin_temp": (25, 45),
    "steps": (0, 1000),
    "worn": (0, 1),
    "fall": (0, 1),
    "battery": (0, 100),
    "smoke": (0, 1),
    "co_ppm": (0, 10000),
    "gas_lel": (0, 100),
    "water_leak": (0, 1),
    "temperature": (-50, 150),
    "humidity": (0, 100),
    "arc_events": (0, 10000),
    "door_open": (0, 1),
    "motion": (0, 1),
}


def run(payload: bytes | dict | list, topic: str = TOPIC) -> Verdict:
    if not isinstance(payload, bytes):
        payload = json.dumps(payload).encode()
    return judge(topic, payload, now_ms=NOW_MS, retention_ms=RETENTION_MS, lookup=REGISTRY.get)


def refused(verdict: Verdict) -> DeadLetter:
    """The single dead letter of a message refused as a whole."""
    assert verdict.record is None
    [dead] = verdict.dead_letters
    return dead


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


# -- accepted messages ----------------------------------------------------------------------------

def test_the_contract_example_is_accepted_as_is(payload_bytes):
    verdict = run(payload_bytes("contract_example"))

    assert verdict.dead_letters == []
    assert verdict.record == TelemetryRecord(
        device_id="wb-000123", member_id="mem-42", seq=17, sent_at_ms=1_795_341_605_120,
        received_at_ms=NOW_MS, readings=EXAMPLE_READINGS,
    )


def test_offsets_are_converted_to_utc_epoch_milliseconds(payload_bytes):
    # 12:00+02:00 and 04:30:01.5-05:30 are 10:00:00Z and 10:00:01.5Z.
    verdict = run(payload_bytes("offset_timestamps"))

    assert verdict.dead_letters == []
    assert verdict.record.sent_at_ms == 1_795_341_605_120
    assert verdict.record.readings == [(T_10_00_MS, "heart_rate", 72.0), (T_10_00_MS + 1500, "spo2", 97.5)]


def test_a_utf8_byte_order_mark_is_tolerated(payload_bytes):
    # RFC 8259 section 8.1: parsers may ignore a BOM; it is still UTF-8.
    verdict = run(b"\xef\xbb\xbf" + payload_bytes("contract_example"))

    assert verdict.dead_letters == []
    assert verdict.record.readings == EXAMPLE_READINGS


def test_a_message_of_exactly_1000_readings_is_accepted(payload):
    message = payload("contract_example")
    message["readings"] = [{"ts": "2026-11-22T10:00:00Z", "metric": "worn", "value": 1}] * 1000

    verdict = run(message)

    assert verdict.dead_letters == []
    assert len(verdict.record.readings) == 1000


# -- whole messages refused -----------------------------------------------------------------------

def padded(body: bytes, size: int) -> bytes:
    """The body with trailing JSON whitespace up to exactly `size` bytes."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.mark.parametrize(
    ("size", "accepted"),
    [
        pytest.param(64 * 1024, True, id="exactly 64 KiB is allowed"),
        pytest.param(64 * 1024 + 1, False, id="one byte more is oversize"),
    ],
)
def test_payload_size_limit(payload_bytes, size, accepted):
    verdict = run(padded(payload_bytes("contract_example"), size))

    if accepted:
        assert verdict.dead_letters == []
        assert verdict.record.readings == EXAMPLE_READINGS
    else:
        dead = refused(verdict)
        assert dead.reason == "oversize"
        assert dead.detail == f"payload is {size} bytes, the limit is 65536"
        assert dead.device_id == "wb-000123"
        assert len(dead.payload) == 4096  # kept for the partner's engineer, but not all of it


def test_oversize_is_judged_before_anything_is_parsed():
    dead = refused(run(b"\xff" * (64 * 1024 + 1)))

    assert dead.reason == "oversize"


@pytest.mark.parametrize(
    "topic",
    [
        "devices/wb-000123/status",
        "devices/wb-000123",
        "devices//telemetry",
        "devices/wb-000123/telemetry/extra",
        "sensors/wb-000123/telemetry",
        "/devices/wb-000123/telemetry",
    ],
)
def test_bad_topic(payload_bytes, topic):
    dead = refused(run(payload_bytes("contract_example"), topic=topic))

    assert dead.reason == "bad_topic"
    assert "topic" in dead.detail
    assert dead.topic == topic
    assert dead.device_id is None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="text"),
        pytest.param(b'{"device_id": "wb-000123", "seq": 17,', id="truncated"),
        pytest.param(b"{'device_id': 'wb-000123'}", id="single quotes"),
        pytest.param('{"device_id": "wb-000123", "note": "café"}'.encode("latin-1"), id="latin-1 bytes"),
        pytest.param(b'{"device_id": "\xc3\x28"}', id="invalid UTF-8 sequence"),
    ],
)
def test_invalid_json(raw):
    dead = refused(run(raw))

    assert dead.reason == "invalid_json"
    assert dead.detail.startswith("not UTF-8 JSON: ")
    assert dead.device_id == "wb-000123"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_json_in_another_unicode_encoding_is_invalid_json(payload, encoding):
    # json.loads on bytes would quietly accept these; the contract asks for UTF-8.
    dead = refused(run(json.dumps(payload("contract_example")).encode(encoding)))

    assert dead.reason == "invalid_json"


def _without(key):
    def change(message):
        del message[key]
        return message

    return change


def _with(key, value):
    def change(message):
        message[key] = value
        return message

    return change


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(lambda m: [m], "payload", id="an array, not an object"),
        pytest.param(lambda m: "wb-000123", "payload", id="a string, not an object"),
        pytest.param(lambda m: None, "payload", id="null"),
        pytest.param(_without("seq"), "seq", id="missing seq"),
        pytest.param(_with("seq", -1), "seq", id="negative seq"),
        pytest.param(_with("seq", 2**63), "seq", id="seq beyond int64"),
        pytest.param(_without("device_id"), "device_id", id="missing device_id"),
        pytest.param(_without("sent_at"), "sent_at", id="missing sent_at"),
        pytest.param(_with("sent_at", "2026-11-22T10:00:05.120"), "sent_at", id="sent_at without timezone"),
        pytest.param(_with("sent_at", "yesterday"), "sent_at", id="sent_at not a time"),
        pytest.param(_without("readings"), "readings", id="missing readings"),
        pytest.param(_with("readings", []), "readings", id="readings empty"),
        pytest.param(_with("readings", {"ts": "2026-11-22T10:00:00Z"}), "readings", id="readings not a list"),
        pytest.param(_with("readings", [{"ts": "2026-11-22T10:00:00Z", "metric": "worn", "value": 1}] * 1001),
                     "readings", id="1001 readings"),
        pytest.param(_with("firmware", "1.2.3"), "firmware", id="extra top-level field"),
    ],
)
def test_schema(payload, change, field):
    message = change(payload("contract_example"))
    raw = json.dumps(message).encode()
    assert len(raw) <= 64 * 1024  # so that it is the schema, not the size, that refuses it

    dead = refused(run(raw))

    assert dead.reason == "schema"
    assert dead.detail.startswith(f"{field}: ")
    assert dead.device_id == "wb-000123"
    assert dead.payload == raw.decode()[:4096]


@pytest.mark.parametrize(
    ("topic_device", "payload_device", "reason"),
    [
        pytest.param("wb-000123", "wb-000124", "device_mismatch", id="names another device"),
        pytest.param("wb-000555", "wb-000555", "unknown_device", id="never registered"),
        pytest.param("wb-000999", "wb-000999", "disabled_device", id="registered but disabled"),
    ],
)
def test_device_refusals(payload, topic_device, payload_device, reason):
    message = payload("contract_example")
    message["device_id"] = payload_device

    dead = refused(run(message, topic=f"devices/{topic_device}/telemetry"))

    assert dead.reason == reason
    assert dead.detail.startswith("device_id: ")
    assert repr(payload_device) in dead.detail
    assert dead.seq == 17
    assert dead.device_id == topic_device


def test_a_topic_whose_device_id_breaks_the_pattern_is_a_bad_topic(payload):
    message = payload("contract_example")
    message["device_id"] = "wb 000123"

    dead = refused(run(message, topic="devices/wb 000123/telemetry"))

    assert dead.reason == "bad_topic"


def test_a_device_id_that_breaks_the_pattern_is_a_schema_error(payload):
    message = payload("contract_example")
    message["device_id"] = "wb 000123"

    dead = refused(run(message))

    assert dead.reason == "schema"
    assert dead.detail.startswith("device_id: ")


@pytest.mark.parametrize("seq", [True, "17", 17.0])
def test_seq_must_be_a_json_integer(payload, seq):
    message = payload("contract_example")
    message["seq"] = seq

    dead = refused(run(message))

    assert (dead.reason, dead.detail.split(":")[0]) == ("schema", "seq")


def test_a_reading_that_is_not_an_object_costs_only_itself(payload):
    message = payload("contract_example")
    message["readings"].insert(0, 1)

    verdict = run(message)

    assert len(verdict.record.readings) == 2
    assert [d.reason for d in verdict.dead_letters] == ["bad_reading"]


# -- single readings refused, the rest kept -------------------------------------------------------

@pytest.mark.parametrize(
    ("reading", "reason", "field"),
    [
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": "72"},
                     "bad_reading", "value", id="value a string"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "worn", "value": True},
                     "bad_reading", "value", id="value a boolean"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": None},
                     "bad_reading", "value", id="value null"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate"},
                     "bad_reading", "value", id="value missing"),
        pytest.param({"metric": "heart_rate", "value": 72}, "bad_reading", "ts", id="ts missing"),
        pytest.param({"ts": "2026-11-22T10:00:00", "metric": "heart_rate", "value": 72},
                     "bad_reading", "ts", id="ts without timezone"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 72, "unit": "bpm"},
                     "bad_reading", "unit", id="extra field"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heartrate", "value": 72},
                     "unknown_metric", "metric", id="unknown metric"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 19},
                     "out_of_range", "value", id="heart_rate 19"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 251},
                     "out_of_range", "value", id="heart_rate 251"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 19.99},
                     "out_of_range", "value", id="heart_rate 19.99"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 1.5e308},
                     "out_of_range", "value", id="heart_rate 1.5e308"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 2**64 - 1},
                     "out_of_range", "value", id="heart_rate 2**64 - 1"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart\u0000rate", "value": 72},
                     "unknown_metric", "metric", id="NUL in the metric name"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": [[[[72]]]]},
                     "bad_reading", "value", id="value nested in arrays"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "worn", "value": 2},
                     "out_of_range", "value", id="flag 2"),
        pytest.param({"ts": "2026-11-22T10:00:00Z", "metric": "water_leak", "value": 0.5},
                     "out_of_range", "value", id="flag 0.5"),
        pytest.param({"ts": iso(NOW_MS + 5 * MINUTE_MS + 1000), "metric": "battery", "value": 80},
                     "future_ts", "ts", id="5 min 1 s in the future"),
        pytest.param({"ts": iso(NOW_MS + 5 * MINUTE_MS + 1), "metric": "battery", "value": 80},
                     "future_ts", "ts", id="5 min 1 ms in the future"),
        pytest.param({"ts": iso(NOW_MS - RETENTION_MS - 1000), "metric": "steps", "value": 12},
                     "too_old", "ts", id="1 s older than retention"),
        pytest.param({"ts": "2020-01-01T00:00:00Z", "metric": "steps", "value": 12},
                     "too_old", "ts", id="years old"),
    ],
)
def test_a_bad_reading_is_refused_and_the_rest_kept(payload, reading, reason, field):
    message = payload("contract_example")
    message["readings"].insert(1, reading)

    verdict = run(message)

    assert verdict.record.readings == EXAMPLE_READINGS
    assert verdict.record.member_id == "mem-42"
    [dead] = verdict.dead_letters
    assert dead.reason == reason
    assert dead.detail.startswith(f"readings.1.{field}")
    assert (dead.device_id, dead.seq, dead.topic) == ("wb-000123", 17, TOPIC)
    assert json.loads(dead.payload) == json.loads(json.dumps(reading))


def _bounds():
    for metric, (low, high) in CONTRACT_RANGES.items():
        yield pytest.param(metric, low, True, id=f"{metric} {low} kept")
        yield pytest.param(metric, high, True, id=f"{metric} {high} kept")
        yield pytest.param(metric, low - 1, False, id=f"{metric} {low - 1} refused")
        yield pytest.param(metric, high + 1, False, id=f"{metric} {high + 1} refused")


@pytest.mark.parametrize(("metric", "value", "kept"), list(_bounds()))
def test_physical_range_bounds_from_the_contract(payload, metric, value, kept):
    message = payload("contract_example")
    message["readings"] = [{"ts": "2026-11-22T10:00:00Z", "metric": metric, "value": value}]

    verdict = run(message)

    if kept:
        assert verdict.dead_letters == []
        assert verdict.record.readings == [(T_10_00_MS, metric, float(value))]
    else:
        assert verdict.record.readings == []
        assert [(d.reason, d.detail.split(":")[0]) for d in verdict.dead_letters] == [
            ("out_of_range", "readings.0.value")
        ]


@pytest.mark.parametrize(
    ("ts_ms", "kept"),
    [
        pytest.param(NOW_MS + 5 * MINUTE_MS, True, id="exactly 5 min ahead kept"),
        pytest.param(NOW_MS + 5 * MINUTE_MS + 1000, False, id="5 min 1 s ahead refused"),
        pytest.param(NOW_MS - RETENTION_MS, True, id="exactly the retention window old kept"),
        pytest.param(NOW_MS - RETENTION_MS - 1000, False, id="1 s older refused"),
    ],
)
def test_time_bounds(payload, ts_ms, kept):
    message = payload("contract_example")
    message["readings"] = [{"ts": iso(ts_ms), "metric": "battery", "value": 80}]

    verdict = run(message)

    assert (verdict.record.readings == [(ts_ms, "battery", 80.0)]) is kept
    assert len(verdict.dead_letters) == (0 if kept else 1)


def test_a_partner_sync_keeps_the_good_readings_and_names_each_bad_one(payload_bytes):
    # A wearable back from hours offline syncs a batch in which half the readings are wrong.
    verdict = run(payload_bytes("partner_sync_with_bad_readings"))

    assert verdict.record.seq == 19
    assert verdict.record.readings == [
        (T_10_00_MS, "heart_rate", 20.0),
        (T_10_00_MS, "heart_rate", 250.0),
        (NOW_MS + 5 * MINUTE_MS, "battery", 80.0),
        (NOW_MS - RETENTION_MS, "steps", 12.0),
    ]
    assert [(d.reason, d.detail.split(":")[0].removesuffix(".int")) for d in verdict.dead_letters] == [
        ("bad_reading", "readings.1.value"),
        ("bad_reading", "readings.2.ts"),
        ("unknown_metric", "readings.3.metric"),
        ("out_of_range", "readings.4.value"),
        ("out_of_range", "readings.5.value"),
        ("out_of_range", "readings.6.value"),
        ("future_ts", "readings.7.ts"),
        ("too_old", "readings.8.ts"),
    ]
    assert all(d.received_at_ms == NOW_MS for d in verdict.dead_letters)


def test_a_message_whose_every_reading_is_bad_still_passes_on_an_empty_record(payload):
    # The message itself is sound: its seq is still seen, and each reading is dead-lettered.
    message = payload("contract_example")
    message["readings"] = [{"ts": "2026-11-22T10:00:00Z", "metric": "heart_rate", "value": 300}]

    verdict = run(message)

    assert verdict.record.readings == []
    assert [d.reason for d in verdict.dead_letters] == ["out_of_range"]


# -- hostile payloads: each costs only itself, as a dead letter with its reason -------------------

GOOD_START = b'{"device_id": "wb-000123", "sent_at": "2026-11-22T10:00:05Z", '
GOOD_READINGS = b'"readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", "value": 0}]'


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 60_000, id="60 KB of ["),
        pytest.param(b'{"a":' * 10_000, id="10 000 unclosed objects"),
        pytest.param(b"[" * 1000 + b"]" * 1000, id="1000 closed arrays (valid JSON, too deep)"),
        pytest.param(GOOD_START + b'"seq": ' + b"7" * 5000 + b", " + GOOD_READINGS + b"}",
                     id="seq of 5000 digits"),
        pytest.param(GOOD_START + b'"seq": 1e400, ' + GOOD_READINGS + b"}", id="a float beyond double"),
        pytest.param(GOOD_START + b'"seq": 1, "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", '
                     b'"value": NaN}]}', id="NaN"),
        pytest.param(GOOD_START + b'"seq": 1, "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", '
                     b'"value": -Infinity}]}', id="-Infinity"),
        pytest.param(GOOD_START + b'"seq": 1, "note": "\\ud800", ' + GOOD_READINGS + b"}",
                     id="lone surrogate escape in a string"),
        pytest.param(GOOD_START + b'"seq": 1, "\\udfff": 1, ' + GOOD_READINGS + b"}",
                     id="lone surrogate escape in a key"),
        pytest.param(GOOD_START + b'"seq": 1, "note": "\xed\xa0\x80", ' + GOOD_READINGS + b"}",
                     id="surrogate encoded as UTF-8 bytes"),
        pytest.param(GOOD_START + b'"seq": 1, "note": "a\x00b", ' + GOOD_READINGS + b"}",
                     id="raw NUL byte in a string"),
        pytest.param(GOOD_START + b'"seq": 1, ' + GOOD_READINGS + b"}\x00", id="NUL after the object"),
        pytest.param(GOOD_START + b'"seq": 1, ' + GOOD_READINGS + b"} {}", id="two documents"),
        pytest.param(b"\xef\xbb\xbf\xef\xbb\xbf{}", id="two byte order marks"),
        pytest.param(GOOD_START + b'"seq": 1, "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", '
                     b'"value": ' + b"[" * 40 + b"0" + b"]" * 40 + b"}]}", id="a reading's value 40 deep"),
    ],
)
def test_hostile_payloads_are_invalid_json(raw):
    assert len(raw) <= 64 * 1024

    dead = refused(run(raw))

    assert dead.reason == "invalid_json"
    assert dead.detail.startswith("not UTF-8 JSON: ")
    assert dead.device_id == "wb-000123"
    assert dead.payload == raw[:4096].decode("utf-8", errors="replace")
    dead.model_dump_json()  # and it can be put on Kafka as it is


@pytest.mark.parametrize(
    ("seq", "field"),
    [
        pytest.param(b"18446744073709551615", "seq", id="seq 2**64 - 1"),
        pytest.param(b"18446744073709551616", "seq", id="seq 2**64 (a float to orjson)"),
        pytest.param(b"-9223372036854775809", "seq", id="seq below int64"),
    ],
)
def test_integers_beyond_int64_are_schema_errors(seq, field):
    dead = refused(run(GOOD_START + b'"seq": ' + seq + b", " + GOOD_READINGS + b"}"))

    assert (dead.reason, dead.detail.split(":")[0]) == ("schema", field)


def test_a_nul_in_a_field_name_is_shown_escaped_in_the_detail(payload):
    message = payload("contract_example")
    message["firm\x00ware"] = "1.2.3"

    dead = refused(run(message))

    assert dead.reason == "schema"
    assert dead.detail.startswith("firm\\x00ware: ")
    assert "\x00" not in dead.detail


def test_a_deep_payload_is_refused_without_the_stdlib_recursing(payload):
    # The same bytes made json.loads raise RecursionError and took the MQTT loop down with it.
    raw = b"[" * 60_000
    with pytest.raises(RecursionError):
        json.loads(raw)

    assert refused(run(raw)).detail.startswith("not UTF-8 JSON: ")


def test_an_internal_failure_is_a_dead_letter_naming_the_error():
    verdict = failed(TOPIC, b'{"seq": 1}', now_ms=NOW_MS, error=KeyError("\ud800 boom"))

    dead = refused(verdict)
    assert (dead.reason, dead.device_id, dead.topic, dead.payload) == ("internal_error", "wb-000123", TOPIC,
                                                                       '{"seq": 1}')
    assert dead.detail.startswith("ingest could not handle this message: KeyError: ")
    dead.model_dump_json()  # the lone surrogate of the error's text does not stop it reaching Kafka


# -- timestamps: RFC 3339 date-times and nothing else ---------------------------------------------

NOT_RFC3339 = [
    pytest.param(1_795_341_600, id="unix seconds"),
    pytest.param(1_795_341_600_000, id="unix milliseconds"),
    pytest.param(1_795_341_600.5, id="unix seconds with a fraction"),
    pytest.param("1795341600", id="unix seconds as a string"),
    pytest.param("2026-11-22", id="a date"),
    pytest.param("2026-11-22T10:00:00", id="no time zone"),
    pytest.param("2026-11-22 10:00:00Z", id="a space for the T"),
    pytest.param("2026-11-22T10:00Z", id="no seconds"),
    pytest.param("2026-11-22T10:00:00+0200", id="offset without a colon"),
    pytest.param("2026-11-22T10:00:00+02", id="offset without minutes"),
    pytest.param("2026-11-22T10:00:00+24:00", id="offset of 24 h"),
    pytest.param("2026-11-22T10:00:00.Z", id="empty fraction"),
    pytest.param("2026-02-30T10:00:00Z", id="February 30"),
    pytest.param("2026-11-22T24:00:00Z", id="hour 24"),
    pytest.param("2026-12-31T23:59:60Z", id="a leap second"),
    pytest.param("\uff12\uff10\uff12\uff16-11-22T10:00:00Z", id="full-width digits"),
    pytest.param("2026-11-22T10:00:00Z ", id="trailing space"),
    pytest.param("20261122T100000Z", id="ISO 8601 basic format"),
    pytest.param(True, id="true"),
    pytest.param(None, id="null"),
    pytest.param(["2026-11-22T10:00:00Z"], id="an array"),
]


@pytest.mark.parametrize("ts", NOT_RFC3339)
def test_a_reading_ts_must_be_rfc3339(payload, ts):
    message = payload("contract_example")
    message["readings"].insert(1, {"ts": ts, "metric": "heart_rate", "value": 72})

    verdict = run(message)

    assert verdict.record.readings == EXAMPLE_READINGS
    [dead] = verdict.dead_letters
    assert dead.reason == "bad_reading"
    assert dead.detail.startswith("readings.1.ts: ")
    assert "RFC 3339" in dead.detail or "leap second" in dead.detail


@pytest.mark.parametrize("sent_at", NOT_RFC3339)
def test_sent_at_must_be_rfc3339(payload, sent_at):
    message = payload("contract_example")
    message["sent_at"] = sent_at

    dead = refused(run(message))

    assert dead.reason == "schema"
    assert dead.detail.startswith("sent_at: ")


@pytest.mark.parametrize(
    ("ts", "ts_ms"),
    [
        pytest.param("2026-11-22T10:00:00Z", T_10_00_MS, id="Z"),
        pytest.param("2026-11-22t10:00:00z", T_10_00_MS, id="lower-case t and z"),
        pytest.param("2026-11-22T10:00:00-00:00", T_10_00_MS, id="-00:00"),
        pytest.param("2026-11-22T12:00:00+02:00", T_10_00_MS, id="+02:00"),
        pytest.param("2026-11-22T10:00:00.001Z", T_10_00_MS + 1, id="milliseconds"),
        pytest.param("2026-11-22T10:00:00.123456789Z", T_10_00_MS + 123, id="nanoseconds, truncated"),
        pytest.param("2026-11-23T09:01:00+23:01", T_10_00_MS, id="offset +23:01"),
    ],
)
def test_rfc3339_forms_are_accepted(payload, ts, ts_ms):
    message = payload("contract_example")
    message["readings"] = [{"ts": ts, "metric": "battery", "value": 80}]

    verdict = run(message)

    assert verdict.dead_letters == []
    assert verdict.record.readings == [(ts_ms, "battery", 80.0)]
