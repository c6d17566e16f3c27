"""Shared pieces of alert evidence: a rule's parameters as JSON data (times are `vigil.timefmt.ms_text`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache
from typing import Any

from vigil.rules.spec import Rule


@lru_cache(maxsize=1024)
def parameters(rule: Rule) -> dict[str, Any]:
    """The rule's description as plain JSON data (tuples as lists), computed once per rule.

    Shared between events: treat it as read-only.
    """
    return json.loads(json.dumps(asdict(rule)))
