"""What the claim tests start from: incidents made by the real rules from readings, on a fixed clock.

Minute 0 is 2026-11-22T02:00:00Z, 03:00 in Paris on Sunday 22 November 2026. Each story is judged by
the default rules (`vigil.rules`), so the incidents, their evidence and the alerts' times are the ones
the stream worker would publish; the people's side of the alert (acknowledged, resolved) is added here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from vigil.claims.facts import AlertRecord, DeviceFacts, IncidentFacts, MemberFacts, Reading, incident_facts
from vigil.events import AlertChanged
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.lateness import judge_device
from vigil.rules.state import DeviceState
from vigil.timefmt import utc_text

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
PARIS = "Europe/Paris"
DEVICE, MEMBER = "hub-7-kitchen", "mem-42"
# The stream worker found the incident 5 s after the reading that completed it.
FOUND_AFTER = timedelta(seconds=5)

RawReading = tuple[datetime, str, float]


def at(minute: float = 0, second: float = 0) -> datetime:
    """Second `second` of minute `minute` of the story."""
    return T0 + timedelta(minutes=minute, seconds=second)


def every(metric: str, value: float, *, from_s: float, to_s: float, step_s: float = 10) -> list[RawReading]:
    """A reading every `step_s` seconds of the story from `from_s` to `to_s`, both included."""
    count = int((to_s - from_s) // step_s) + 1
    return [(at(0, from_s + i * step_s), metric, float(value)) for i in range(count)]


def member(**changes: Any) -> MemberFacts:
    base = MemberFacts(id=MEMBER, name="Anna Meyer", birth_date=date(1958, 4, 9), phone="+33 6 12 34 56 78",
                       email="anna.meyer@example.org", address="12 rue des Lilas, 75011 Paris", timezone=PARIS,
                       policy_number="P-2026-0042", policy_line="both", auto_claims=False)
    return replace(base, **changes)


def home_device(**changes: Any) -> DeviceFacts:
    base = DeviceFacts(device_id=DEVICE, kind="home", location="kitchen", report_interval_s=10,
                       registered_at=T0 - timedelta(days=30))
    return replace(base, **changes)


def wearable(**changes: Any) -> DeviceFacts:
    return home_device(device_id="watch-42", kind="wearable", location="left wrist", **changes)


@dataclass(frozen=True, slots=True)
class Story:
    """One incident as the rules opened it, its alert as the alerts service would hold it, and the readings."""

    incident: IncidentFacts
    alert: AlertRecord
    readings: list[Reading]
    device: DeviceFacts

    def acknowledged(self, by: str, moment: datetime) -> Story:
        alert = replace(self.alert, status="acknowledged", acknowledged_at=moment, acknowledged_by=by,
                        history=[*self.alert.history, {"at": utc_text(moment), "action": "acknowledged", "by": by}])
        return replace(self, alert=alert)

    def resolved(self, by: str, outcome: str, moment: datetime) -> Story:
        entry = {"at": utc_text(moment), "action": "resolved", "by": by, "outcome": outcome}
        alert = replace(self.alert, status="resolved", resolved_at=moment, outcome=outcome,
                        history=[*self.alert.history, entry])
        return replace(self, alert=alert)

    def still_open(self) -> Story:
        """As if the claim were built before the alert cleared: no clear, and only the readings until then."""
        cleared_at = self.alert.cleared_at
        if cleared_at is None:
            return self
        alert = replace(self.alert, status="open", cleared_at=None, resolved_at=None,
                        history=[e for e in self.alert.history if e["action"] != "condition_cleared"])
        return replace(self, alert=alert, readings=[r for r in self.readings if r.ts < self.incident.detected_at])


def judged(raw: list[RawReading], *, device: DeviceFacts, alert_type: str) -> Story:
    """Judge the readings with the default rules, as the stream worker does, and keep the one incident."""
    raw = sorted(raw, key=lambda r: (r[0], r[1]))
    ms = [(round(ts.timestamp() * 1000), metric, value) for ts, metric, value in raw]
    judgement = judge_device(DeviceState(), ms, rules=DEFAULT_RULES, device_id=device.device_id, member_id=MEMBER,
                             now_ms=ms[-1][0], location=device.location)
    [event] = judgement.incidents
    changes = [c for c in judgement.alerts if c.alert_id == event.alert_id]
    # The stream worker publishes as the readings arrive: the incident as soon as its condition is met.
    incident = replace(incident_facts(event), detected_at=_ms(event.condition_met_at_ms) + FOUND_AFTER)
    readings = [Reading(ts=ts, metric=metric, value=value, seq=i) for i, (ts, metric, value) in enumerate(raw)]
    return Story(incident=incident, alert=_alert(changes, alert_type), readings=readings, device=device)


def _alert(changes: list[AlertChanged], alert_type: str) -> AlertRecord:
    raised = next(c for c in changes if c.change == "raised" and c.type == alert_type)
    cleared = next((c for c in changes if c.change == "cleared"), None)
    raised_at = _ms(raised.triggered_at_ms) + FOUND_AFTER
    history: list[dict[str, Any]] = [{"at": utc_text(raised_at), "action": "raised"}]
    cleared_at = None
    if cleared is not None:
        cleared_at = _ms(cleared.cleared_at_ms)
        history.append({"at": utc_text(cleared_at + FOUND_AFTER), "action": "condition_cleared",
                        "cleared_at": utc_text(cleared_at)})
    return AlertRecord(id=raised.alert_id, type=raised.type, severity=raised.severity,
                       status="resolved" if cleared else "open", triggered_at=_ms(raised.triggered_at_ms),
                       raised_at=raised_at, cleared_at=cleared_at,
                       resolved_at=cleared_at + FOUND_AFTER if cleared_at else None, acknowledged_at=None,
                       acknowledged_by=None, outcome=None, history=history)


def _ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def leak(minutes: int = 25, *, device: DeviceFacts | None = None) -> Story:
    """Dry for the half hour before, then water for `minutes`, then dry again until the alert clears."""
    wet_s = minutes * 60
    raw = (every("water_leak", 0, from_s=-1800, to_s=-10) + every("water_leak", 1, from_s=0, to_s=wet_s)
           + every("water_leak", 0, from_s=wet_s + 10, to_s=wet_s + 600))
    return judged(raw, device=device or home_device(), alert_type="water_leak")


def fire(*, with_heat: bool) -> Story:
    """Smoke for 8 minutes; with heat, the temperature climbs past the overheat threshold at once."""
    raw = (every("smoke", 0, from_s=-1800, to_s=-10) + every("smoke", 1, from_s=0, to_s=480)
           + every("smoke", 0, from_s=490, to_s=1200))
    if with_heat:
        raw += (every("temperature", 21, from_s=-1800, to_s=-10) + every("temperature", 63, from_s=0, to_s=480)
                + every("temperature", 30, from_s=490, to_s=1200))
    return judged(raw, device=home_device(device_id="hub-7-smoke"), alert_type="smoke")


def fall(*, steps_again_s: float | None = None) -> Story:
    """A wearable on the body, a fall at minute 1 and no steps after it (until `steps_again_s`, if given)."""
    raw = (every("heart_rate", 78, from_s=-1800, to_s=1200) + every("worn", 1, from_s=-1800, to_s=1200)
           + every("steps", 4, from_s=-1800, to_s=50) + every("steps", 0, from_s=60, to_s=1200)
           + [(at(1), "fall", 1.0)])
    if steps_again_s is not None:
        raw = [r for r in raw if not (r[1] == "steps" and r[0] == at(0, steps_again_s))]
        raw.append((at(0, steps_again_s), "steps", 12.0))
    return judged(raw, device=wearable(), alert_type="fall")
