"""PostgreSQL storage shared by every service: schema, registry look-ups, sinks."""

from __future__ import annotations

import psycopg
from psycopg import errors


class StorageError(RuntimeError):
    """The database refused or lost a request; the message says which and why."""


# Refusals caused by what is written, raised again on every attempt however long one waits: bad
# data (a NUL in text, a number or a date out of range), a violated constraint, a value too big for
# its index (ProgramLimitExceeded, class 54), or text that cannot even be encoded (a lone surrogate).
CONTENT_ERRORS: tuple[type[Exception], ...] = (psycopg.DataError, psycopg.IntegrityError,
                                               errors.ProgramLimitExceeded, UnicodeError)


def refused_for_content(exc: BaseException) -> bool:
    """True when the database (or the driver) refused the rows themselves: retrying cannot help."""
    return isinstance(exc, CONTENT_ERRORS)
