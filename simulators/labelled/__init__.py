"""Labelled scenarios for measuring alert quality: readings, and the alerts docs/rules.md says they must raise."""

from simulators.labelled.library import BY_NAME, LIBRARY, select
from simulators.labelled.model import Expected, Scenario
from vigil.rules.catalog import ALERT_TYPES

__all__ = ["ALERT_TYPES", "BY_NAME", "LIBRARY", "Expected", "Scenario", "select"]
