"""What PostgreSQL would refuse, found in decoded JSON before any SQL, with where it is."""

from __future__ import annotations

import pytest

from api.storable import MAX_DEPTH, unstorable


@pytest.mark.parametrize(
    "value", ["plain", "Ünïcödé 🚑", 42, 1.5, None, True, {"a": ["b", {"c": 1}]}, [], {}, "\\u0000 (escaped, harmless)"]
)
def test_what_postgresql_stores_passes(value: object) -> None:
    assert unstorable(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00b", "contains a NUL character (U+0000)"),
        ("a\ud800", "contains an unpaired UTF-16 surrogate"),
        (["ok", "\x00"], "contains a NUL character (U+0000) at plan.1"),
        ({"tachycardia": {"enabled": "\udfff"}}, "contains an unpaired UTF-16 surrogate at plan.tachycardia.enabled"),
        ({"x\x00": 1}, "has a key that contains a NUL character (U+0000)"),
        ({"a": {"\ud83d": 1}}, "has a key that contains an unpaired UTF-16 surrogate at plan.a"),
        ({"a": float("nan")}, "is not a finite number at plan.a"),
        ([float("-inf")], "is not a finite number at plan.0"),
    ],
)
def test_what_postgresql_refuses_is_found_and_located(value: object, problem: str) -> None:
    assert unstorable(value, "plan") == problem


def test_nesting_is_bounded_without_recursion() -> None:
    deep: list = []
    for _ in range(100_000):  # far past Python's recursion limit
        deep = [deep]
    assert (unstorable(deep) or "").startswith(f"is nested deeper than {MAX_DEPTH} levels")
    shallow: list = []
    for _ in range(MAX_DEPTH):
        shallow = [shallow]
    assert unstorable(shallow) is None
