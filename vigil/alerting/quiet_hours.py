"""A member's quiet hours: when a non-critical message to them waits (CONTRACT §5).

Times of day are the member's wall clock; zoneinfo turns them into moments, daylight saving included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class QuietHours:
    """From `start` to `end` in the member's time zone; `end` before `start` runs across midnight."""

    start: time
    end: time


def parse_quiet_hours(data: Mapping[str, object]) -> QuietHours:
    """`{"start": "22:00", "end": "07:00"}` as `QuietHours`; a wrong value raises `ValueError` with a sentence."""
    if not isinstance(data, Mapping):
        raise ValueError('quiet_hours must be an object like {"start": "22:00", "end": "07:00"}')
    times = {key: _time_of_day(data, key) for key in ("start", "end")}
    if times["start"] == times["end"]:
        raise ValueError("quiet_hours start and end at the same time; leave quiet_hours out for none")
    return QuietHours(start=times["start"], end=times["end"])


def _time_of_day(data: Mapping[str, object], key: str) -> time:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f'quiet_hours needs {key!r} as a time of day like "22:00", not {value!r}')
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError(value)
        return time(int(hours), int(minutes))
    except ValueError as e:
        raise ValueError(f"quiet_hours {key} {value!r} is not a time of day in HH:MM") from e


def quiet_until(quiet: QuietHours | None, tz: str, now: datetime) -> datetime | None:
    """The end (UTC) of the quiet period `now` falls in, or None when `now` is outside quiet hours."""
    if quiet is None:
        return None
    zone = ZoneInfo(tz)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    local = now.astimezone(zone)
    of_day = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        if not quiet.start <= of_day < quiet.end:
            return None
        end_day = local.date()
    elif of_day >= quiet.start:
        end_day = local.date() + timedelta(days=1)
    elif of_day < quiet.end:
        end_day = local.date()
    else:
        return None
    # A wall time that a clock change skips (fold 0) is read with the offset before the change.
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)
