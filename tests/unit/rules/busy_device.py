"""One busy device for the lateness tests: 100 minutes with an episode of (almost) every rule, its
in-order judgement, and deliveries of it in messages that straggle within the allowance.
"""

from __future__ import annotations

import random

from tests.unit.rules.story import at, judge
from vigil.rules.lateness import DEFAULT_ALLOWED_LATENESS_MS, Judgement
from vigil.rules.state import DeviceState


def _scenario() -> list[tuple[int, str, float]]:
    """100 minutes of one busy device (a sample of every metric each 15 s) with an episode of every rule
    but freeze_risk: tachycardia, low_spo2 reaching critical, bradycardia, a fall and one the member got up
    from, a leak long enough for an incident, smoke with overheat, CO, gas, arcing, a drained battery.
    """
    rng = random.Random(2026)
    readings = []
    for s in range(0, 100 * 60, 15):
        minute, noise = s // 60, rng.uniform(-3, 3)
        values = {
            "heart_rate": (132 if 10 <= minute < 30 else 36 if 60 <= minute < 75 else 80) + noise,
            "spo2": 83 if 26 <= minute < 29 else 88 if 20 <= minute < 31 else 97,
            "steps": 30 if 45 <= minute < 50 else 0,
            "worn": 0 if 52 <= minute < 55 else 1,
            "water_leak": 1 if 5 <= minute < 30 else 0,
            "smoke": 1 if 60 * 60 <= s < 60 * 60 + 90 else 0,
            "temperature": 65 if 60 <= minute < 62 else 21 + noise / 3,
            "co_ppm": 170 + noise if 40 <= minute < 55 else 4,
            "gas_lel": 15 if 70 <= minute < 72 else 0,
            "arc_events": 1 if minute in (12, 14, 16) and s % 60 == 0 else 0,
            "battery": 9 if minute >= 85 else 60 - minute / 10,
        }
        readings += [(at(0, s), metric, float(value)) for metric, value in values.items()]
    readings += [(at(80, 5), "fall", 1.0), (at(90, 5), "fall", 1.0), (at(90, 20), "steps", 12.0)]
    return sorted(readings)


SCENARIO = _scenario()
INSTANTS = sorted({ts for ts, _, _ in SCENARIO})


def deliver(batches: list[list], *, lateness_ms: int = DEFAULT_ALLOWED_LATENESS_MS) -> tuple[Judgement, DeviceState]:
    """Judge the batches one call each; all alerts and incidents in the order sent, and the final state."""
    state, alerts, incidents, too_late = DeviceState(), [], [], 0
    for batch in batches:
        judgement = judge(batch, state=state, allowed_lateness_ms=lateness_ms)
        alerts += judgement.alerts
        incidents += judgement.incidents
        too_late += judgement.too_late
    return Judgement(alerts=alerts, incidents=incidents, too_late=too_late), state


def _by_instant() -> list[list]:
    """In-order delivery: every instant's readings in one message, as a device sends a sample."""
    batches: dict[int, list] = {}
    for reading in SCENARIO:
        batches.setdefault(reading[0], []).append(reading)
    return list(batches.values())


IN_ORDER, IN_ORDER_STATE = deliver(_by_instant())


def straggling(seed: int, *, max_delay_s: float) -> list[list]:
    """Messages of one or two samples (at most 15 s apart), each arriving up to `max_delay_s` after its
    last reading, in the order they arrive, readings shuffled: none is later than the allowance.
    """
    rng = random.Random(seed)
    by_instant: dict[int, list] = {}
    for reading in SCENARIO:
        by_instant.setdefault(reading[0], []).append(reading)
    messages, i = [], 0
    while i < len(INSTANTS):
        size = rng.choice((1, 2))
        message = [r for ts in INSTANTS[i:i + size] for r in by_instant[ts]]
        rng.shuffle(message)
        messages.append((INSTANTS[min(i + size, len(INSTANTS)) - 1] + rng.uniform(0, max_delay_s * 1000), message))
        i += size
    return [message for _, message in sorted(messages, key=lambda m: m[0])]
