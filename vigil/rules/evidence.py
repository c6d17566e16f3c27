"""Shared pieces of alert evidence: times as RFC 3339 text and a rule's parameters as JSON data."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from vigil.rules.spec import Rule


def iso(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC text, the way the API shows times."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


@lru_cache(maxsize=1024)
def parameters(rule: Rule) -> dict[str, Any]:
    """The rule's description as plain JSON data (tuples as lists), computed once per rule.

    Shared between events: treat it as read-only.
    """
    return json.loads(json.dumps(asdict(rule)))
