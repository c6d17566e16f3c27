"""Whether a member's policy owes a claim for an incident, and if not, the sentence that says why."""

from __future__ import annotations

POLICY_LINES = ("health", "home", "both")

# The incident as a sentence's subject.
_KIND_WORDS = {"water_damage": "water damage", "fire": "a fire", "accident": "an accident"}


def coverage_refusal(kind: str, covered_by: str, *, policy_line: str | None, policy_number: str) -> str | None:
    """None when the policy covers the incident's line (`both` covers every line); else why no claim is owed."""
    if policy_line in (covered_by, "both"):
        return None
    what = _KIND_WORDS.get(kind, f"a {kind.replace('_', ' ')} incident")
    if policy_line not in POLICY_LINES:
        return f"no claim: {what} is covered by a {covered_by} policy, and policy {policy_number} has no line on file"
    return f"no claim: {what} is covered by a {covered_by} policy, and policy {policy_number} is {policy_line} only"
