"""What PostgreSQL cannot store, found before it is sent: NUL, lone surrogates, non-finite numbers.

A `text` column refuses U+0000; `jsonb` refuses `\\u0000`, unpaired surrogates and NaN/Infinity (which
Python's JSON parser accepts). Refused in SQL they would be a database error in the middle of a
request; found here they are a 422 naming where they are.
"""

from __future__ import annotations

import math
from typing import Any

from vigil.storage.text import UNSTORABLE_CHARACTERS

MAX_DEPTH = 32  # far deeper than any document the API takes (care plans are two levels)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    found = UNSTORABLE_CHARACTERS.search(text)
    if found is None:
        return None
    return "contains a NUL character (U+0000)" if found.group() == "\x00" else "contains an unpaired UTF-16 surrogate"


def unstorable(value: Any, name: str = "") -> str | None:
    """Why a decoded JSON value (keys included) cannot be stored, naming where inside `name` it is; None when
    it can. Iterative, so no nesting depth can exhaust Python's stack."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        where = f" at {'.'.join((name, *path) if name else path)}" if path else ""
        if len(path) > MAX_DEPTH:
            return f"is nested deeper than {MAX_DEPTH} levels{where}"
        if isinstance(item, str):
            if problem := text_problem(item):
                return problem + where
        elif isinstance(item, float) and not math.isfinite(item):
            return f"is not a finite number{where}"
        elif isinstance(item, dict):
            for key, inner in item.items():
                key_text = str(key)
                if problem := text_problem(key_text):
                    return f"has a key that {problem}{where}"
                pending.append((inner, (*path, key_text)))
        elif isinstance(item, list | tuple):
            pending.extend((inner, (*path, str(i))) for i, inner in enumerate(item))
    return None
