"""The pure part of the stream worker's writers: digests that tell a redelivery from a reused seq,
the letters a write raises, and cleaning every text field before it reaches PostgreSQL."""

from __future__ import annotations

import psycopg

from vigil.storage.sinks import (
    _unique,
    clean_letter,
    clean_record,
    digest,
    fingerprint,
    letter_refused,
    record_refused,
    reused_seqs,
    seq_reused,
)
from vigil.telemetry import DeadLetter

NOW_MS = 1_796_000_000_000


def record(seq: int, value: float = 72.0, *, received_ms: int = NOW_MS, device_id: str = "wb-1") -> dict:
    return {"device_id": device_id, "member_id": "m-1", "seq": seq, "sent_at_ms": NOW_MS - 100,
            "received_at_ms": received_ms, "readings": [(NOW_MS - 60_000, "heart_rate", value)]}


def test_a_digest_is_a_bigint_that_depends_on_the_readings_only():
    first, later = record(5), record(5, received_ms=NOW_MS + 3_600_000)
    assert digest(first["readings"]) == digest(later["readings"])
    assert digest(record(5, 71.0)["readings"]) != digest(first["readings"])
    # Lists (from JSON) and tuples (from the decoder) are the same readings.
    assert digest([list(r) for r in first["readings"]]) == digest(first["readings"])
    for readings in ([], first["readings"], [(2**62, "x" * 1000, 1e308)] * 1000):
        assert -(2**63) <= digest(readings) < 2**63


def test_a_redelivery_in_the_same_batch_is_stored_once_and_raises_nothing():
    a, again = record(1), record(1, received_ms=NOW_MS + 5)
    unique, reused = _unique([a, again, record(2)])
    assert list(unique) == [("wb-1", 1), ("wb-1", 2)]
    assert unique[("wb-1", 1)][0] is a
    assert reused == []


def test_a_seq_sent_again_with_other_readings_in_the_same_batch_is_a_seq_reused_letter():
    first, other = record(1, 72.0), record(1, 40.0)
    unique, [(which, letter)] = _unique([first, other])
    assert unique[("wb-1", 1)][0] is first
    assert which is other
    assert (letter.reason, letter.device_id, letter.seq, letter.topic) == ("seq_reused", "wb-1", 1,
                                                                          "devices/wb-1/telemetry")
    assert '"readings":[[1795999940000,"heart_rate",40.0]]' in letter.payload


def test_against_the_ledger_only_another_digest_raises_a_letter():
    same, other = record(1), record(2, 40.0)
    pending = {("wb-1", 1): (same, digest(same["readings"])), ("wb-1", 2): (other, digest(other["readings"]))}
    stored = [("wb-1", 1, digest(same["readings"]), NOW_MS - 86_400_000, 1),
              ("wb-1", 2, digest(record(2)["readings"]), NOW_MS - 86_400_000, 1)]
    [(which, letter)] = reused_seqs(pending, stored)
    assert which is other
    assert letter.detail.startswith("seq 2 was stored before with other readings (received "
                                    "2026-11-29T00:53:20.000Z, 1 reading, digest ")


def test_a_reused_seq_delivered_twice_makes_one_fingerprint():
    stored = {"stored_digest": 123, "stored_received_ms": NOW_MS - 1000, "stored_readings": 1}
    once = seq_reused(record(1, 40.0), digest(record(1, 40.0)["readings"]), **stored)
    again = seq_reused(record(1, 40.0, received_ms=NOW_MS + 9000), digest(record(1, 40.0)["readings"]), **stored)
    assert once.received_at_ms != again.received_at_ms
    assert fingerprint(once) == fingerprint(again)


def test_every_text_field_of_a_record_is_cleaned():
    dirty = {**record(1, device_id="wb\x00\ud800"), "member_id": "m\x00",
             "readings": [(1, "heart\x00rate", 72.0)]}
    cleaned = clean_record(dirty)
    assert (cleaned["device_id"], cleaned["member_id"], cleaned["readings"]) == (
        "wb\ufffd\ufffd", "m\ufffd", [(1, "heart\ufffdrate", 72.0)])
    assert clean_record({**record(1), "member_id": None})["member_id"] is None


def test_every_text_field_of_a_dead_letter_is_cleaned_and_fingerprintable():
    dirty = DeadLetter(received_at_ms=NOW_MS, reason="sch\x00ema", detail='"\x00x": Extra inputs',
                       topic="devices/\ud800/telemetry", device_id="d\x00", seq=1, payload='{"\x00x": 1}')
    cleaned = clean_letter(dirty)
    for name in ("reason", "detail", "topic", "device_id", "payload"):
        text = getattr(cleaned, name)
        assert "\x00" not in text
        text.encode()
    assert cleaned.detail == '"\ufffdx": Extra inputs'
    fingerprint(cleaned)


def test_a_clean_letter_is_returned_as_it_is():
    letter = DeadLetter(received_at_ms=NOW_MS, reason="schema", detail="d", topic="t")
    assert clean_letter(letter) is letter


def test_a_refused_record_is_recorded_with_the_databases_words():
    error = psycopg.errors.DatetimeFieldOverflow('timestamp out of range: "1e+14"\nCONTEXT: COPY ...')
    letter = record_refused({**record(3), "readings": [(10**17, "heart_rate", 1.0)]}, error, now_ms=NOW_MS)
    assert (letter.reason, letter.seq, letter.received_at_ms) == ("store_refused", 3, NOW_MS)
    assert letter.detail == ('the database refused this message: DatetimeFieldOverflow: '
                             'timestamp out of range: "1e+14" CONTEXT: COPY ...')
    assert "100000000000000000" in letter.payload


def test_a_refused_dead_letter_is_kept_as_the_payload_of_its_stand_in():
    refused = DeadLetter(received_at_ms=10**18, reason="schema", detail="x", topic="t", seq=2**70)
    stand_in = letter_refused(refused, psycopg.DataError("timestamp out of range"), now_ms=NOW_MS)
    assert (stand_in.reason, stand_in.received_at_ms, stand_in.seq) == ("store_refused", NOW_MS, None)
    assert DeadLetter.model_validate_json(stand_in.payload) == refused
