"""Decoding incidents-topic records, refusing what PostgreSQL would refuse every time.

The consumer retries database errors until they pass, so a record that could never be stored (an id
that is not a UUID, a NUL character, a time outside the calendar, NaN in the evidence) would stop it
for good; such a record is refused here, logged and skipped instead.
"""

from __future__ import annotations

import json
import uuid

from pydantic import ValidationError

from vigil.events import IncidentOpened
from vigil.validation_errors import first_error

_EARLIEST_MS = 0  # 1970
_LATEST_MS = 253_402_300_799_999  # the end of year 9999, the last a Python datetime can hold
_TIMES = ("started_at_ms", "condition_met_at_ms", "detected_at_ms")


class MalformedIncident(ValueError):
    """An incidents-topic record that is not a storable `IncidentOpened`; the message says why."""


def decode_incident(value: bytes | None) -> IncidentOpened:
    """Parse one record value into the event, or raise `MalformedIncident` naming the first problem."""
    if not value:
        raise MalformedIncident("empty record value")
    if b"\\u0000" in value:
        raise MalformedIncident("contains a NUL character, which PostgreSQL cannot store")
    try:
        event = IncidentOpened.model_validate_json(value)
    except ValidationError as e:
        where, message = first_error(e, whole="value")
        raise MalformedIncident(f"{where}: {message}") from e
    for name in ("incident_id", "alert_id"):
        try:
            uuid.UUID(getattr(event, name))
        except ValueError as e:
            raise MalformedIncident(f"{name}: {getattr(event, name)!r} is not a UUID") from e
    for name in _TIMES:
        ms = getattr(event, name)
        if not _EARLIEST_MS <= ms <= _LATEST_MS:
            raise MalformedIncident(f"{name}: {ms} is not a plausible epoch-millisecond time")
    try:
        # The event is stored as jsonb, which has no NaN or infinity (pydantic's parser accepts both).
        json.dumps(event.evidence, allow_nan=False)
    except ValueError as e:
        raise MalformedIncident(f"evidence: {e}") from e
    return event
