"""Quiet hours: when a member's quiet period ends, across midnight and daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from vigil.alerting.quiet_hours import QuietHours, parse_quiet_hours, quiet_until

NIGHT = QuietHours(start=time(22, 0), end=time(7, 0))
AFTERNOON = QuietHours(start=time(13, 0), end=time(15, 0))


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("quiet", "tz", "now", "until"), [
    (None, "Europe/Paris", "2025-06-03T23:00", None),
    # Summer (UTC+2): 22:30 local is inside, until 07:00 local the next morning.
    (NIGHT, "Europe/Paris", "2025-06-03T20:30", "2025-06-04T05:00"),
    (NIGHT, "Europe/Paris", "2025-06-03T20:00", "2025-06-04T05:00"),  # the start is inside
    (NIGHT, "Europe/Paris", "2025-06-04T02:00", "2025-06-04T05:00"),  # after midnight
    (NIGHT, "Europe/Paris", "2025-06-04T05:00", None),  # the end is not
    (NIGHT, "Europe/Paris", "2025-06-03T12:00", None),
    (NIGHT, "Europe/Paris", "2025-06-03T19:59", None),
    # The clocks go forward on 30 March 2025 at 02:00: the night is an hour shorter, and ends at 05:00 UTC.
    (NIGHT, "Europe/Paris", "2025-03-29T21:30", "2025-03-30T05:00"),  # 22:30 CET
    (NIGHT, "Europe/Paris", "2025-03-30T00:30", "2025-03-30T05:00"),  # 01:30 CET
    (NIGHT, "Europe/Paris", "2025-03-30T01:30", "2025-03-30T05:00"),  # 03:30 CEST
    # They go back on 26 October 2025 at 03:00: 07:00 local is then 06:00 UTC.
    (NIGHT, "Europe/Paris", "2025-10-25T21:00", "2025-10-26T06:00"),  # 23:00 CEST
    (NIGHT, "Europe/Paris", "2025-10-26T00:30", "2025-10-26T06:00"),  # 02:30 CEST, the first of two
    (NIGHT, "Europe/Paris", "2025-10-26T01:30", "2025-10-26T06:00"),  # 02:30 CET, the second
    # Quiet hours within one day.
    (AFTERNOON, "Europe/Paris", "2025-06-03T11:30", "2025-06-03T13:00"),
    (AFTERNOON, "Europe/Paris", "2025-06-03T13:00", None),
    (AFTERNOON, "Europe/Paris", "2025-06-03T10:59", None),
    # Another zone, in winter (UTC-5).
    (NIGHT, "America/New_York", "2025-01-15T04:00", "2025-01-15T12:00"),
    (NIGHT, "America/New_York", "2025-01-15T12:00", None),
    # An end the spring change skips (02:30 does not exist on 30 March): read as 03:30 CEST.
    (QuietHours(start=time(23, 0), end=time(2, 30)), "Europe/Paris", "2025-03-29T23:00", "2025-03-30T01:30"),
])
def test_quiet_until(quiet, tz, now, until):
    assert quiet_until(quiet, tz, _utc(now)) == (None if until is None else _utc(until))


def test_a_naive_now_is_taken_as_utc():
    assert quiet_until(NIGHT, "Europe/Paris", datetime(2025, 6, 3, 20, 30)) == _utc("2025-06-04T05:00")


def test_parse_quiet_hours():
    assert parse_quiet_hours({"start": "22:00", "end": "07:00"}) == NIGHT


@pytest.mark.parametrize(("data", "sentence"), [
    ({"start": "22:00"}, "quiet_hours needs 'end' as a time of day like \"22:00\", not None"),
    ({"start": 22, "end": "07:00"}, "quiet_hours needs 'start' as a time of day like \"22:00\", not 22"),
    ({"start": "7:00", "end": "09:00"}, "quiet_hours start '7:00' is not a time of day in HH:MM"),
    ({"start": "22:00", "end": "24:00"}, "quiet_hours end '24:00' is not a time of day in HH:MM"),
    ({"start": "22:60", "end": "07:00"}, "quiet_hours start '22:60' is not a time of day in HH:MM"),
    ({"start": "22h", "end": "07:00"}, "quiet_hours start '22h' is not a time of day in HH:MM"),
    ({"start": "08:00", "end": "08:00"}, "quiet_hours start and end at the same time; leave quiet_hours out for none"),
    (["22:00", "07:00"], 'quiet_hours must be an object like {"start": "22:00", "end": "07:00"}'),
])
def test_invalid_quiet_hours_are_refused_with_a_sentence(data, sentence):
    with pytest.raises(ValueError) as refused:
        parse_quiet_hours(data)
    assert str(refused.value) == sentence
