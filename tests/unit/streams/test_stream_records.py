"""Decoding what the stream worker reads from Kafka: anything that is not a record ingest would
write becomes a `bad_record` dead letter, and the good records of the batch go on."""

from __future__ import annotations

import orjson
import pytest

from streams.records import TelemetryRecordDict, decode_dead_letters, decode_telemetry
from vigil.telemetry import DeadLetter, TelemetryRecord

NOW_MS = 1_796_000_000_000
GOOD = {"device_id": "wb-000123", "member_id": "m-1", "seq": 17, "sent_at_ms": NOW_MS - 50,
        "received_at_ms": NOW_MS, "readings": [[NOW_MS - 60_000, "heart_rate", 72.0], [NOW_MS, "steps", 3]]}


def test_the_dict_mirrors_the_record_model():
    assert set(TelemetryRecordDict.__annotations__) == set(TelemetryRecord.model_fields)


def test_a_good_record_decodes_to_a_plain_dict_with_reading_tuples():
    records, bad = decode_telemetry([orjson.dumps(GOOD)], topic="vigil.telemetry", now_ms=NOW_MS)
    assert bad == []
    assert records == [{**GOOD, "readings": [(NOW_MS - 60_000, "heart_rate", 72.0), (NOW_MS, "steps", 3.0)]}]


@pytest.mark.parametrize(("value", "detail"), [
    (b"", "record: Invalid JSON"),
    (None, "record: JSON input should be string, bytes or bytearray"),
    (b"[[[[", "record: Invalid JSON"),
    (b'{"a": "\\ud800"}', "record: Invalid JSON"),
    (orjson.dumps([GOOD]), "record: Input should be an object"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "member_id"}), "member_id: Field required"),
    (orjson.dumps({**GOOD, "device_id": "wb\u0000x"}), "device_id: String should match pattern"),
    (orjson.dumps({**GOOD, "device_id": "d" * 65}), "device_id: String should match pattern"),
    (orjson.dumps({**GOOD, "seq": -1}), "seq: Input should be greater than or equal to 0"),
    (b'{"device_id": "d", "member_id": null, "seq": 9223372036854775808, "sent_at_ms": 1, '
     b'"received_at_ms": 1, "readings": []}', "seq: Input should be less than or equal to"),
    (orjson.dumps({**GOOD, "readings": [[1, "heart_rate"]]}), "readings.0.2: Field required"),
    (orjson.dumps({**GOOD, "readings": [["soon", "heart_rate", 1]]}), "readings.0.0: Input should be a valid"),
])
def test_anything_else_is_a_bad_record_and_the_batch_goes_on(value, detail):
    records, bad = decode_telemetry([value, orjson.dumps(GOOD)], topic="vigil.telemetry", now_ms=NOW_MS)
    assert [r["seq"] for r in records] == [17]
    [letter] = bad
    assert letter.reason == "bad_record"
    assert letter.detail.startswith(detail), letter.detail
    assert letter.topic == "vigil.telemetry"
    assert letter.received_at_ms == NOW_MS
    assert letter.payload == (value or b"")[:4096].decode("utf-8", errors="replace")


def test_a_bad_records_payload_is_cut_and_never_undecodable():
    value = b"\xff\xfe" + b"x" * 10_000
    _, [letter] = decode_telemetry([value], topic="vigil.telemetry", now_ms=NOW_MS)
    assert len(letter.payload) == 4094 + 2 and letter.payload.startswith("\ufffd\ufffd")


def test_dead_letters_decode_and_the_undecodable_ones_become_bad_records():
    good = DeadLetter(received_at_ms=NOW_MS, reason="schema", detail="\x00: Extra inputs are not permitted",
                      topic="devices/d/telemetry", device_id="d", seq=1, payload='{"\\u0000": 1}')
    letters, bad = decode_dead_letters([good.model_dump_json().encode(), b'{"reason": "x"}'],
                                       topic="vigil.deadletters", now_ms=NOW_MS)
    assert letters == [good]
    [letter] = bad
    assert (letter.reason, letter.topic, letter.payload) == ("bad_record", "vigil.deadletters", '{"reason": "x"}')
    assert letter.detail.startswith("received_at_ms: Field required")
