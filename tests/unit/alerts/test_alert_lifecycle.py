"""Decoding alert events and writing history entries: what the consumer refuses and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alerts.event_decoding import MalformedEvent, decode_alert_changed, history_entry
from vigil.events import alert_id
from vigil.timefmt import utc_text

GOOD = {
    "change": "raised",
    "alert_id": alert_id("wb-1", "fall", 1_700_000_000_000),
    "type": "fall",
    "severity": "critical",
    "member_id": "m-1",
    "device_id": "wb-1",
    "triggered_at_ms": 1_700_000_000_000,
    "detected_at_ms": 1_700_000_001_000,
    "evidence": {"fall": 1},
}


def encode(**changes: object) -> bytes:
    return json.dumps(GOOD | changes).encode()


def test_a_well_formed_event_decodes() -> None:
    event = decode_alert_changed(encode())
    assert (event.change, event.alert_id, event.evidence) == ("raised", GOOD["alert_id"], {"fall": 1})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty"),
        (b"", "empty"),
        (b"{not json", "Invalid JSON"),
        (encode(change="exploded"), "change"),
        (encode(severity="urgent"), "severity"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "member_id"}).encode(), "member_id"),
        (encode(alert_id="alert-1"), "not a UUID"),
        (encode(member_id="m\u0000"), "NUL"),
        (encode(triggered_at_ms=-1), "triggered_at_ms"),
        (encode(cleared_at_ms=10**20), "cleared_at_ms"),
    ],
)
def test_a_malformed_event_is_refused_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        decode_alert_changed(value)


def test_a_history_entry_carries_wall_time_in_utc_and_details() -> None:
    at = datetime(2026, 11, 22, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    assert history_entry("retriggered", at, episode="e-1") == {
        "at": "2026-11-22T10:00:00Z",
        "action": "retriggered",
        "episode": "e-1",
    }


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2026-01-02T03:04:05.120000Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),
    ],
)
def test_times_are_written_in_rfc3339_utc(moment: datetime, text: str) -> None:
    assert utc_text(moment) == text
