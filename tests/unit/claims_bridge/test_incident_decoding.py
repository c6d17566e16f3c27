"""Which incidents-topic records the bridge stores, and the reason it gives for those it skips."""

from __future__ import annotations

import json

import pytest

from claims_bridge.incident_decoding import MalformedIncident, decode_incident

EVENT = {
    "incident_id": "2f1e0c8a-5b7d-5e3f-9a1c-4d6b8e0f2a13", "kind": "water_damage", "covered_by": "home",
    "member_id": "m-1", "device_id": "hub-1", "location": "kitchen",
    "alert_id": "0b6c5c4e-2b1a-4a57-9f0e-8d7c6b5a4f31", "alert_type": "water_leak",
    "started_at_ms": 1_795_000_000_000, "condition_met_at_ms": 1_795_000_120_000,
    "detected_at_ms": 1_795_000_121_000, "evidence": {"lasted_s": 1200.0},
}


def encode(**changes: object) -> bytes:
    return json.dumps(EVENT | changes).encode()


def test_a_well_formed_incident_decodes() -> None:
    event = decode_incident(encode())
    assert (event.incident_id, event.kind, event.covered_by, event.location) == (
        EVENT["incident_id"], "water_damage", "home", "kitchen")


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty record value"),
    (b"", "empty record value"),
    (b"not json", "value: Invalid JSON"),
    (encode(kind="flood"), "kind: Input should be 'water_damage', 'fire' or 'accident'"),
    (encode(covered_by="car"), "covered_by: Input should be 'health' or 'home'"),
    (encode(incident_id="incident-1"), "incident_id: 'incident-1' is not a UUID"),
    (encode(alert_id="a-1"), "alert_id: 'a-1' is not a UUID"),
    (encode(member_id="m\u0000"), "contains a NUL character"),
    (encode(started_at_ms=-1), "started_at_ms: -1 is not a plausible epoch-millisecond time"),
    (encode(detected_at_ms=10**17), "detected_at_ms: 100000000000000000 is not a plausible"),
    (encode(evidence={"lasted_s": 1200.0}).replace(b"1200.0", b"NaN"), "evidence: Out of range float values"),
    (encode(evidence={"lasted_s": 1200.0}).replace(b"1200.0", b"1e999"), "evidence: Out of range float values"),
])
def test_a_record_postgresql_would_refuse_forever_is_malformed(value: bytes | None, reason: str) -> None:
    with pytest.raises(MalformedIncident) as refused:
        decode_incident(value)
    assert str(refused.value).startswith(reason)
