"""The default rules of docs/rules.md, as data (all but `device_offline`, which runs on wall-clock silence).

Choices docs/rules.md leaves open, made here:
- CO and freeze_risk come from home sensors that may sample only every few minutes (Roost every
  30), so their runs bridge silent minutes; the health rules need consecutive minutes.
- Falls regroup for 30 minutes: a member who falls again while still down is one episode, one
  incident; every new fall refreshes the alert at once (no update rate limit).
"""

from __future__ import annotations

from vigil.rules.offline import DEVICE_OFFLINE
from vigil.rules.spec import (
    FallRule,
    Incident,
    Rule,
    SpanRule,
    SustainedMinutesRule,
    Tier,
    WindowCountRule,
)

DEFAULT_RULES: tuple[Rule, ...] = (
    SustainedMinutesRule(
        type="tachycardia", metric="heart_rate",
        tiers=(Tier(op="above", threshold=120, minutes=10, severity="high"),),
        clear_op="at_most", clear_threshold=110, clear_minutes=5, requires_worn=True, max_steps=100,
    ),
    SustainedMinutesRule(
        type="bradycardia", metric="heart_rate",
        tiers=(Tier(op="below", threshold=40, minutes=10, severity="high"),),
        clear_op="at_least", clear_threshold=45, clear_minutes=5, requires_worn=True,
    ),
    SustainedMinutesRule(
        type="low_spo2", metric="spo2",
        tiers=(Tier(op="below", threshold=90, minutes=5, severity="high"),
               Tier(op="below", threshold=85, minutes=2, severity="critical")),
        clear_op="at_least", clear_threshold=92, clear_minutes=5, requires_worn=True,
    ),
    FallRule(
        type="fall", metric="fall", activity_metric="steps", quiet_s=60, severity="critical",
        regroup_s=1800, requires_worn=True, update_every_s=0,
        incident=Incident(kind="accident", covered_by="health"),
    ),
    SpanRule(
        type="low_battery", metric="battery", op="at_most", threshold=10, span_s=0, severity="low",
        clear_op="at_least", clear_threshold=20, clear_s=0,
    ),
    SpanRule(
        type="smoke", metric="smoke", op="at_least", threshold=1, span_s=30, severity="critical",
        clear_op="at_most", clear_threshold=0, clear_s=300,
        incident=Incident(kind="fire", covered_by="home", after_s=120, or_with=("overheat",)),
    ),
    SustainedMinutesRule(
        type="co", metric="co_ppm",
        # UL 2034 alarm points.
        tiers=(Tier(op="at_least", threshold=70, minutes=60, severity="critical"),
               Tier(op="at_least", threshold=150, minutes=10, severity="critical"),
               Tier(op="at_least", threshold=400, minutes=4, severity="critical")),
        clear_op="below", clear_threshold=30, clear_minutes=10, max_silent_minutes=4, never_at_or_below=30,
    ),
    SpanRule(
        type="gas_leak", metric="gas_lel", op="at_least", threshold=10, span_s=30, severity="critical",
        clear_op="below", clear_threshold=5, clear_s=300,
    ),
    SpanRule(
        type="water_leak", metric="water_leak", op="at_least", threshold=1, span_s=60, severity="high",
        clear_op="at_most", clear_threshold=0, clear_s=300,
        incident=Incident(kind="water_damage", covered_by="home", after_s=1200),
    ),
    SustainedMinutesRule(
        type="freeze_risk", metric="temperature",
        # -6.7 °C is 20 °F, the pipe-freeze point for unheated spaces.
        tiers=(Tier(op="at_most", threshold=5, minutes=30, severity="medium"),
               Tier(op="at_most", threshold=-6.7, minutes=30, severity="high")),
        clear_op="at_least", clear_threshold=8, clear_minutes=30, max_silent_minutes=29,
    ),
    SpanRule(
        type="overheat", metric="temperature", op="at_least", threshold=57, span_s=30, severity="critical",
        clear_op="below", clear_threshold=45, clear_s=300,
    ),
    WindowCountRule(
        type="electrical_arcing", metric="arc_events", threshold=3, window_s=600, severity="high",
        clear_s=86_400,
    ),
)


def _alert_types() -> tuple[str, ...]:
    # docs/rules.md's order: `device_offline`, judged by the scheduler, comes after the health rules.
    stream_types = [rule.type for rule in DEFAULT_RULES]
    after_health = stream_types.index("fall") + 1
    return (*stream_types[:after_health], DEVICE_OFFLINE.type, *stream_types[after_health:])


# Every alert type Vigil raises: the one list the API schema and the simulators use.
ALERT_TYPES: tuple[str, ...] = _alert_types()
