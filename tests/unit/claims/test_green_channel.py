"""The green channel: fires, falls of members aged 75 or more, and accidents that needed emergency help."""

from __future__ import annotations

from datetime import date

import pytest

from vigil.claims.green_channel import age_on, green_channel


@pytest.mark.parametrize(("born", "day", "age"), [
    (date(1950, 5, 17), date(2026, 5, 16), 75),
    (date(1950, 5, 17), date(2026, 5, 17), 76),  # the birthday itself
    (date(1950, 5, 17), date(2026, 12, 31), 76),
    (date(1952, 2, 29), date(2026, 2, 28), 73),  # a leap-day birthday comes on 1 March in other years
    (date(1952, 2, 29), date(2026, 3, 1), 74),
    (date(1952, 2, 29), date(2028, 2, 29), 76),
    (None, date(2026, 5, 17), None),
])
def test_age_on(born, day, age):
    assert age_on(born, day) == age


@pytest.mark.parametrize(("kind", "alert_type", "age", "help_sent", "reason"), [
    ("fire", "smoke", None, None, "A fire in the home."),
    ("fire", "overheat", 40, False, "A fire in the home."),
    ("accident", "fall", 75, None, "A fall of a member aged 75."),
    ("accident", "fall", 88, False, "A fall of a member aged 88."),
    ("accident", "fall", 88, True, "A fall of a member aged 88, and emergency help was sent."),
    ("accident", "fall", 74, True, "An accident, and emergency help was sent."),
    ("accident", "fall", None, True, "An accident, and emergency help was sent."),
    ("accident", "fall", 74, None, None),
    ("accident", "fall", 74, False, None),
    # Without a birth date on file the age is not known: no green channel on age alone.
    ("accident", "fall", None, None, None),
    ("water_damage", "water_leak", 90, None, None),
    ("water_damage", "water_leak", 90, True, None),
])
def test_green_channel(kind, alert_type, age, help_sent, reason):
    assert green_channel(kind=kind, alert_type=alert_type, age_at_loss=age, emergency_help=help_sent) == reason
