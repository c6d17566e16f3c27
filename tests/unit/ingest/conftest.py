"""Fixture helpers: payloads live as JSON files in tests/fixtures/payloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

PAYLOADS = Path(__file__).resolve().parents[2] / "fixtures" / "payloads"


@pytest.fixture
def payload_bytes() -> Callable[[str], bytes]:
    """The bytes of a payload fixture exactly as a device would publish them."""

    def read(name: str) -> bytes:
        return (PAYLOADS / f"{name}.json").read_bytes()

    return read


@pytest.fixture
def payload(payload_bytes: Callable[[str], bytes]) -> Callable[[str], dict]:
    """A payload fixture parsed, for tests that change one thing about it."""

    def load(name: str) -> dict:
        return json.loads(payload_bytes(name))

    return load
