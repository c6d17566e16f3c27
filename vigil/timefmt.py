"""How Vigil writes times: RFC 3339 in UTC with a `Z`, in the API, alert evidence, history and logs."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_text(moment: datetime, timespec: str = "auto") -> str:
    """RFC 3339 in UTC; naive values are taken to be UTC already. `timespec` as `datetime.isoformat`'s."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def ms_text(ms: int, timespec: str = "auto") -> str:
    """Epoch milliseconds as `utc_text`."""
    return utc_text(datetime.fromtimestamp(ms / 1000, UTC), timespec)
