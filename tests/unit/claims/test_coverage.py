"""Coverage: a claim is owed when the member's policy line is the one the incident needs, or `both`."""

from __future__ import annotations

import pytest

from vigil.claims.coverage import coverage_refusal


@pytest.mark.parametrize(("kind", "covered_by", "line", "refusal"), [
    ("water_damage", "home", "home", None),
    ("water_damage", "home", "both", None),
    ("water_damage", "home", "health",
     "no claim: water damage is covered by a home policy, and policy P-1 is health only"),
    ("fire", "home", "home", None),
    ("fire", "home", "both", None),
    ("fire", "home", "health", "no claim: a fire is covered by a home policy, and policy P-1 is health only"),
    ("accident", "health", "health", None),
    ("accident", "health", "both", None),
    ("accident", "health", "home", "no claim: an accident is covered by a health policy, and policy P-1 is home only"),
    # A member row without a policy line owes nothing, and says so rather than guessing.
    ("accident", "health", None,
     "no claim: an accident is covered by a health policy, and policy P-1 has no line on file"),
    ("accident", "health", "",
     "no claim: an accident is covered by a health policy, and policy P-1 has no line on file"),
])
def test_coverage_refusal(kind, covered_by, line, refusal):
    assert coverage_refusal(kind, covered_by, policy_line=line, policy_number="P-1") == refusal
