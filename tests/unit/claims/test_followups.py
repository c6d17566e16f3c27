"""After payment: the care manager's follow-up task and the member's prevention tip, due the next morning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil.alerting.tips import load_tips
from vigil.claims.followups import FollowUp, after_payment, follow_up_due


@pytest.mark.parametrize(("kind", "alert_type", "words", "tip_for"), [
    ("accident", "fall", "Rehabilitation check-in", None),
    ("accident", "tachycardia", "Recovery check-in", None),
    ("water_damage", "water_leak", "Plumber's check", "water_leak"),
    ("fire", "smoke", "Home safety check", "smoke"),
])
def test_after_payment(kind, alert_type, words, tip_for):
    follow_ups = after_payment(kind=kind, alert_type=alert_type)
    assert len(follow_ups) == 1
    [follow_up] = follow_ups
    assert isinstance(follow_up, FollowUp)
    assert follow_up.reason.startswith(words)
    assert follow_up.tip_for == tip_for


def test_every_tip_named_exists():
    tips = load_tips()
    for kind, alert_type in (("water_damage", "water_leak"), ("fire", "smoke")):
        assert all(f.tip_for in tips for f in after_payment(kind=kind, alert_type=alert_type))


def test_an_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="not a claim type"):
        after_payment(kind="theft", alert_type="water_leak")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("paid_at", "tz", "due"), [
    # Paid at 16:00 Paris: 10:00 Paris (09:00 UTC in winter) the next day.
    ("2026-11-23T15:00", "Europe/Paris", "2026-11-24T09:00"),
    # Paid at 00:30 Paris on the 24th (23:30 UTC on the 23rd): the next day there is the 25th.
    ("2026-11-23T23:30", "Europe/Paris", "2026-11-25T09:00"),
    # In New York the same moment is still the 23rd: due on the 24th at 10:00 EST.
    ("2026-11-23T23:30", "America/New_York", "2026-11-24T15:00"),
    # Across the spring clock change: 10:00 CEST is 08:00 UTC.
    ("2026-03-28T12:00", "Europe/Paris", "2026-03-29T08:00"),
    # A zone that is not one: UTC rather than no follow-up.
    ("2026-11-23T15:00", "Mars/Olympus_Mons", "2026-11-24T10:00"),
])
def test_follow_up_due(paid_at, tz, due):
    assert follow_up_due(_utc(paid_at), tz) == _utc(due)
