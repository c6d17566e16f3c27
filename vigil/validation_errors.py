"""The first of a pydantic validation's errors, as where it is and what is wrong, for dead letters and logs."""

from __future__ import annotations

from pydantic import ValidationError


def first_error(e: ValidationError, *, whole: str) -> tuple[str, str]:
    """The first error's location as a dotted path (`whole` when it is the value itself) and its message."""
    err = e.errors(include_url=False)[0]
    return ".".join(str(p) for p in err["loc"]) or whole, err["msg"]
