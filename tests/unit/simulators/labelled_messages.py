"""The labelled scenarios at a fixed clock: the moment they are played at, and a scenario's messages as the
readings the rules judge, with the order the scenario delivers them in.
"""

from __future__ import annotations

from datetime import UTC, datetime

from simulators.labelled.messages import delivery_order, plan_messages
from simulators.labelled.model import Scenario
from vigil.telemetry import to_ms

NOW = datetime(2026, 11, 22, 15, 37, 12, tzinfo=UTC)

Reading = tuple[int, str, float]


def scenario_messages(scenario: Scenario) -> tuple[list[list[Reading]], list[int]]:
    """The scenario's messages as readings, and the order they are delivered in."""
    start = scenario.start_for(NOW)
    planned = plan_messages(scenario, device_id="d", start=start, sent_at=NOW)
    by_offset = {sample.t_s: sample.values for sample in scenario.samples()}
    start_ms = to_ms(start)
    messages = [[(start_ms + t * 1000, metric, float(value)) for t in message.offsets
                 for metric, value in by_offset[t].items()] for message in planned]
    return messages, delivery_order(scenario, planned)
