"""Per-minute sums and counts of the metrics the minute rules read, shared by those rules.

Kept only as far back as the longest window that reads them (evidence and the activity guard
look back; runs themselves are tracked incrementally), so a day-long episode costs no more state
than a ten-minute one. JSON keys are strings, so minutes are stored as text and parsed on load.
"""

from __future__ import annotations

from collections.abc import Iterable

from vigil.rules.spec import WORN_METRIC

MINUTE_MS = 60_000


class MinuteStore:
    """Sums and counts per metric and whole minute, plus the last minute all minute rules judged."""

    __slots__ = ("buckets", "judged_through")

    def __init__(self, buckets: dict[str, dict[int, list[float]]] | None = None,
                 judged_through: int | None = None) -> None:
        self.buckets = buckets if buckets is not None else {}
        self.judged_through = judged_through

    @classmethod
    def from_dict(cls, data: dict | None) -> MinuteStore:
        if not data:
            return cls()
        buckets = {metric: {int(m): list(b) for m, b in minutes.items()} for metric, minutes in data["buckets"].items()}
        return cls(buckets, data["judged_through"])

    def to_dict(self) -> dict:
        return {"buckets": {metric: {str(m): list(b) for m, b in minutes.items()}
                            for metric, minutes in self.buckets.items() if minutes},
                "judged_through": self.judged_through}

    def add(self, ts_ms: int, metric: str, value: float) -> None:
        minutes = self.buckets.get(metric)
        if minutes is None:
            minutes = self.buckets[metric] = {}
        bucket = minutes.get(ts_ms // MINUTE_MS)
        if bucket is None:
            minutes[ts_ms // MINUTE_MS] = [value, 1]
        else:
            bucket[0] += value
            bucket[1] += 1

    def mean(self, metric: str, minute: int) -> tuple[float, int] | None:
        """The minute's mean and reading count, or None when it heard nothing."""
        bucket = self.buckets.get(metric, {}).get(minute)
        if not bucket or not bucket[1]:
            return None
        return bucket[0] / bucket[1], int(bucket[1])

    def unworn(self, minute: int) -> bool:
        """Whether the wearable said it was off the body at any time in the minute.

        A wearable that does not report the flag at all is taken as worn.
        """
        worn = self.buckets.get(WORN_METRIC, {}).get(minute)
        return bool(worn) and worn[0] < worn[1]

    def total(self, metric: str, first: int, last: int) -> float:
        minutes = self.buckets.get(metric, {})
        return sum(minutes[m][0] for m in range(first, last + 1) if m in minutes)

    def heard(self, metric: str, after: int | None, through: int) -> list[int]:
        """The minutes in (after, through] with readings of the metric, in order."""
        minutes = self.buckets.get(metric, {})
        return sorted(m for m in minutes if m <= through and (after is None or m > after))

    def trim(self, current_minute: int, horizons: dict[str, int]) -> None:
        """Forget minutes older than each metric's horizon (minutes before the current one)."""
        for metric, minutes in self.buckets.items():
            oldest = current_minute - horizons.get(metric, 0)
            for minute in [m for m in minutes if m < oldest]:
                del minutes[minute]

    def metrics(self) -> Iterable[str]:
        return self.buckets.keys()
