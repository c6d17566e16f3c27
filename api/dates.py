"""How the API reads dates: an RFC 3339 full-date only.

Date-times are read by `vigil.telemetry.Rfc3339DateTime`, as telemetry is; dates here, just as
strictly, because pydantic's lax parsing also takes unix numbers (`0` is 1970-01-01) and the contract
promises RFC 3339.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

# RFC 3339 section 5.6 `full-date`; ASCII digits only.
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def full_date_text(value: object) -> object:
    """A pydantic before-validator: only an RFC 3339 full-date (`1941-12-10`) goes on to date parsing."""
    if isinstance(value, date):  # built in Python, not read from a request
        return value
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        raise ValueError("must be an RFC 3339 date such as 1941-12-10")
    return value


FullDate = Annotated[date, BeforeValidator(full_date_text), WithJsonSchema({"type": "string", "format": "date"})]
