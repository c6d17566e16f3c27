"""Every rule through the real pipeline: each labelled positive scenario (and the late-sync and
out-of-order ones) raises exactly its alerts, of the right type, severity and triggered_at.

The scenarios and their labels live in `simulators/labelled`; `vigil eval` runs the whole library
(boundaries and confounders too) and prints precision, recall and latency per rule.
"""

from __future__ import annotations

import pytest

from simulators.evaluation import runner
from simulators.evaluation.scoring import score
from simulators.labelled import LIBRARY

pytestmark = pytest.mark.infra

SCENARIOS = [s for s in LIBRARY
             if not s.live and (s.role == "positive" or "late_sync" in s.name or "out_of_order" in s.name)]


def test_each_rule_raises_its_alerts_through_the_pipeline(pipeline):
    assert {e.type for s in SCENARIOS for e in s.expected} >= {
        "tachycardia", "bradycardia", "low_spo2", "fall", "low_battery", "smoke", "co", "gas_leak",
        "water_leak", "freeze_risk", "overheat", "electrical_arcing"}

    # Out-of-order scenarios are spaced so each message is judged on its own, as a device's would be.
    result = runner.run(SCENARIOS, pipeline.settings, pipeline.settings.admin_token, parallel=6, settle_s=8)

    assert not result.problems
    failures = [(v.scenario, v.outcome, v.expected, v.seen) for v in score(result.observations).failures]
    assert failures == []
