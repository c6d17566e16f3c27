"""Which database errors the stream worker retries (they may pass later) and which it does not
(the rows themselves are refused: retrying would jam the batch for good)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from streams.database import transient
from vigil.storage import refused_for_content

RETRIED = [
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    errors.AdminShutdown("terminating connection due to administrator command"),
    errors.CannotConnectNow("the database system is starting up"),
    errors.SerializationFailure("could not serialize access"),
    errors.DeadlockDetected("deadlock detected"),
    errors.TooManyConnections("sorry, too many clients already"),
    errors.QueryCanceled("canceling statement due to statement timeout"),
    errors.DiskFull("could not extend file"),
    errors.UndefinedTable('relation "messages" does not exist'),  # an operator's fix, not the rows'
    errors.InsufficientPrivilege("permission denied for table readings"),
    psycopg.InterfaceError("the connection is closed"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError("timed out"),
]
REFUSED = [
    psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
    errors.CharacterNotInRepertoire("invalid byte sequence for encoding UTF8"),
    errors.UntranslatableCharacter("unsupported Unicode escape sequence"),
    errors.NumericValueOutOfRange('value "9223372036854775808" is out of range for type bigint'),
    errors.DatetimeFieldOverflow("timestamp out of range"),
    errors.InvalidTextRepresentation('invalid input syntax for type bigint: "x"'),
    errors.NotNullViolation('null value in column "detail"'),
    errors.UniqueViolation("duplicate key value violates unique constraint"),
    errors.ProgramLimitExceeded("index row size 3000 exceeds btree version 4 maximum 2704"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
]


@pytest.mark.parametrize("error", RETRIED, ids=lambda e: type(e).__name__)
def test_errors_that_may_pass_later_are_retried(error):
    assert transient(error)
    assert not refused_for_content(error)


@pytest.mark.parametrize("error", REFUSED, ids=lambda e: type(e).__name__)
def test_errors_about_the_rows_are_not_retried(error):
    assert refused_for_content(error)
    assert not transient(error)


@pytest.mark.parametrize("error", [KeyError("device_id"), RuntimeError("bug")], ids=lambda e: type(e).__name__)
def test_errors_from_outside_the_database_are_neither(error):
    assert not transient(error)
    assert not refused_for_content(error)
