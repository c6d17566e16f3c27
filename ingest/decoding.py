"""The bounded JSON decode of one MQTT payload: any bytes in, a JSON value or a `ValueError` out.

One hostile message must cost only itself. The standard library's `json.loads` raises
`RecursionError` on 60 KB of `[` and `ValueError` (not `JSONDecodeError`) on a 5,000-digit integer,
and accepts `NaN`, `Infinity` and lone surrogates (`"\\ud800"`) that cannot be encoded back to UTF-8.
orjson parses in Rust without recursing in Python, refuses all of those as `JSONDecodeError`, caps
nesting at 1024 and validates UTF-8 itself; the depth check below keeps what it returns shallow
enough for everything that walks it afterwards (pydantic, `json.dumps`, the stream worker).
"""

from __future__ import annotations

import orjson

# The contract's payload is 3 deep (object, readings array, reading object); the slack lets an odd
# reading value cost only that reading, while nothing downstream can recurse far.
MAX_JSON_DEPTH = 32
_UTF8_BOM = b"\xef\xbb\xbf"


def decode_json(payload: bytes) -> object:
    """The payload's JSON value; `ValueError` saying why when it is not UTF-8 JSON within the limits."""
    # RFC 8259 section 8.1: a parser may ignore a UTF-8 byte order mark; orjson does not.
    body = payload.removeprefix(_UTF8_BOM)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(str(e)) from None
    # Each level of nesting opens with a `[` or `{`: a payload with no more of those than the limit
    # (counted in C, strings included) cannot nest deeper, so only longer ones are walked.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth(value: object) -> int:
    """How deeply arrays and objects nest in a decoded JSON value (a scalar is 0), without recursion.

    Stops one level past `MAX_JSON_DEPTH`: any answer above the limit means "too deep".
    """
    deepest = 0
    pending: list[tuple[object, int]] = [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:  # deeper is refused anyway; no need to walk it all
            pending.extend((child, depth) for child in children)
    return deepest
