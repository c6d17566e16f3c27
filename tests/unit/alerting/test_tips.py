"""Prevention tips are data: one for every alert type, each saying the practical thing."""

from __future__ import annotations

import pytest

from vigil.alerting.tips import Tip, load_tips
from vigil.rules.catalog import ALERT_TYPES

# What each incident's tip must mention (issue 7: a leak, a shut-off valve and where it is; arcing, an
# electrician; CO, the appliance to have checked).
MUST_SAY = {
    "water_leak": ("shut-off valve", "under the kitchen sink"),
    "electrical_arcing": ("electrician",),
    "co": ("boiler", "service the appliance"),
    "smoke": ("smoke alarm",),
    "gas_leak": ("gas engineer", "gas shut-off"),
    "freeze_risk": ("insulate pipes",),
    "overheat": ("heaters",),
    "fall": ("rugs", "grab rails"),
}


def test_every_alert_type_has_a_tip():
    assert set(load_tips()) == set(ALERT_TYPES)


@pytest.mark.parametrize(("alert_type", "phrases"), MUST_SAY.items())
def test_the_tip_for_each_incident_type_says_the_practical_thing(alert_type, phrases):
    tip = load_tips()[alert_type]
    assert isinstance(tip, Tip) and tip.title
    for phrase in phrases:
        assert phrase in tip.text


def test_tip_text_is_one_paragraph_of_plain_words():
    for tip in load_tips().values():
        assert "\n" not in tip.text and "  " not in tip.text and "\\" not in tip.text
        assert tip.text.endswith(".")


def test_each_load_is_a_fresh_table():
    tips = load_tips()
    tips.pop("fall")
    assert "fall" in load_tips()
