"""The bounded JSON decode: any bytes give a value or a `ValueError`, never anything else."""

from __future__ import annotations

import contextlib
import json
import random

import pytest

from ingest.decoding import MAX_JSON_DEPTH, decode_json, json_depth


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("value", "depth"),
    [
        (1, 0),
        ("x", 0),
        ([], 1),
        ({}, 1),
        ({"readings": [{"ts": "t", "value": 1}]}, 3),
        ([[], [[[]]], {"a": {"b": []}}], 4),
    ],
)
def test_json_depth(value, depth):
    assert json_depth(value) == depth


def test_json_depth_walks_no_further_than_needed_and_does_not_recurse():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]

    assert json_depth(deep) == MAX_JSON_DEPTH + 1


def test_the_depth_limit_is_exact():
    assert decode_json(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_JSON_DEPTH} levels"):
        decode_json(nested(MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"a": "' + b"[" * 100 + b'"}', id="brackets inside a string"),
        pytest.param(b"[" + b"[]," * 100 + b"[]]", id="many shallow arrays"),
        pytest.param(b'{"r": [' + b'{"ts": 1},' * 100 + b"{}]}", id="a hundred readings"),
    ],
)
def test_a_payload_with_more_brackets_than_the_limit_is_judged_by_its_depth(raw):
    # Counting brackets only spares the walk when there are few of them; many do not refuse by themselves.
    assert decode_json(raw) is not None


def test_a_utf8_byte_order_mark_is_skipped():
    assert decode_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"a": "\\u0000"}', {"a": "\x00"}),  # valid JSON; what it may contain is for the schema to judge
        (b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a surrogate pair is one character
        (b'{"a": 1, "a": 2}', {"a": 2}),
        (b"18446744073709551615", 2**64 - 1),
        (b"1.7976931348623157e308", 1.7976931348623157e308),
    ],
)
def test_what_is_decoded(raw, value):
    assert decode_json(raw) == value


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 60_000,
        b"1" * 5000,
        b"1e400",
        b"NaN",
        b"Infinity",
        b'"\\ud800"',
        b'"\xed\xa0\x80"',
        b'"\xc3\x28"',
        b'"\x00"',
        json.dumps({"a": 1}).encode("utf-16"),
        b"",
    ],
)
def test_what_is_refused(raw):
    with pytest.raises(ValueError):
        decode_json(raw)


def test_random_bytes_never_raise_anything_but_value_error():
    rng = random.Random(10)
    alphabet = b'[]{}",:0123456789.eE+-\\u\x00\xff\xed\xa0 tfnrlsa'
    for _ in range(20_000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 64)))
        with contextlib.suppress(ValueError):
            decode_json(raw)
