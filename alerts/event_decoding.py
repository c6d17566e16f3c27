"""What an alert event means for the stored alert: decoding it and the history entries it writes.

Pure: the SQL that applies these lives in `alerts.store`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from vigil.events import AlertChanged
from vigil.timefmt import utc_text
from vigil.validation_errors import first_error

_EARLIEST_MS = 0  # 1970
_LATEST_MS = 253_402_300_799_999  # the end of year 9999, the last a Python datetime can hold


class MalformedEvent(ValueError):
    """An alerts-topic record that is not an `AlertChanged`; the message says why."""


def decode_alert_changed(value: bytes | None) -> AlertChanged:
    """Parse one record value; a record the database would refuse raises `MalformedEvent`.

    The consumer retries database errors until they pass, so anything that would fail every time
    (an id that is not a UUID, a NUL character, a time outside the calendar) is refused here.
    """
    if not value:
        raise MalformedEvent("empty record value")
    if b"\\u0000" in value:
        raise MalformedEvent("contains a NUL character, which PostgreSQL cannot store")
    try:
        event = AlertChanged.model_validate_json(value)
    except ValidationError as e:
        where, message = first_error(e, whole="value")
        raise MalformedEvent(f"{where}: {message}") from e
    try:
        uuid.UUID(event.alert_id)
    except ValueError as e:
        raise MalformedEvent(f"alert_id: {event.alert_id!r} is not a UUID") from e
    for name in ("triggered_at_ms", "detected_at_ms", "cleared_at_ms"):
        ms = getattr(event, name)
        if ms is not None and not _EARLIEST_MS <= ms <= _LATEST_MS:
            raise MalformedEvent(f"{name}: {ms} is not a plausible epoch-millisecond time")
    return event


def history_entry(action: str, at: datetime, **details: Any) -> dict[str, Any]:
    """One line of an alert's history: what happened, when (wall time), and its particulars."""
    return {"at": utc_text(at), "action": action, **details}


def episode_marker(alert_id: str) -> list[dict[str, str]]:
    """A JSON containment pattern matching a history that absorbed this episode."""
    return [{"episode": alert_id}]
