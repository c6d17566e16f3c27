"""The evidence package of a claim: the sensor timeline around the loss, the alerts and who was told, and
the checks a claims handler makes first; encoded once, canonically, so its digest proves it unaltered."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from vigil.claims.facts import AlertRecord, DeviceFacts, IncidentFacts, OutreachRecord, Reading
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.spec import WORN_METRIC, Comparison, SpanRule, compare
from vigil.timefmt import utc_text

# The timeline runs from half an hour before the loss (what was normal, and whether the device was
# reporting) to ten minutes after its alert cleared (that it stayed clear).
LOOKBACK_S = 1800
AFTER_S = 600
# A week of a wearable reporting every 30 s; beyond it the readings nearest the loss are kept.
MAX_READINGS = 20_000
# A silence up to this many report intervals is ordinary (one lost message, a late one); never less than
# two minutes, for devices that report every few seconds.
ALLOWED_GAP_INTERVALS = 2.5
MIN_ALLOWED_GAP_S = 120.0
# How close to the loss a wearable's `worn` flag says whether it was on the body.
WORN_NEAR_S = 300

_SPAN_RULES = {rule.type: rule for rule in DEFAULT_RULES if isinstance(rule, SpanRule)}


def evidence_window(incident: IncidentFacts, alert: AlertRecord | None,
                    built_at: datetime) -> tuple[datetime, datetime]:
    """From `LOOKBACK_S` before the loss to `AFTER_S` after the alert cleared, never past `built_at`."""
    start = incident.started_at - timedelta(seconds=LOOKBACK_S)
    cleared_at = alert.cleared_at if alert is not None else None
    end = min(built_at, (cleared_at or built_at) + timedelta(seconds=AFTER_S))
    return start, end


def minute_aggregates(readings: Sequence[Reading]) -> list[dict[str, Any]]:
    """Per UTC minute and metric: how many readings, their min, max and mean; in time, then metric order."""
    values: dict[tuple[datetime, str], list[float]] = defaultdict(list)
    for reading in readings:
        minute = reading.ts.astimezone(UTC).replace(second=0, microsecond=0)
        values[(minute, reading.metric)].append(reading.value)
    return [
        {"minute": utc_text(minute), "metric": metric, "count": len(found), "min": min(found), "max": max(found),
         "mean": math.fsum(found) / len(found)}
        for (minute, metric), found in sorted(values.items())
    ]


def consistency(incident: IncidentFacts, device: DeviceFacts, readings: Sequence[Reading]) -> dict[str, Any]:
    """What a claims handler checks first: the device was there before the loss, was reporting, was worn.

    Continuity is judged over the `LOOKBACK_S` before the loss (from registration, if later): every
    silence, including the one up to the loss itself, must stay within the allowed gap, or the onset
    may have been earlier than the readings show.
    """
    loss = incident.started_at
    registered_before = device.registered_at <= loss
    allowed_gap_s = max(ALLOWED_GAP_INTERVALS * device.report_interval_s, MIN_ALLOWED_GAP_S)
    lookback_start = loss - timedelta(seconds=LOOKBACK_S)
    before = sorted({r.ts for r in readings if lookback_start <= r.ts < loss})
    largest_gap_s: float | None = None
    if before:
        since = max(lookback_start, device.registered_at) if registered_before else lookback_start
        points = [min(since, before[0]), *before, loss]
        largest_gap_s = max((b - a).total_seconds() for a, b in pairwise(points))
    return {
        "device_registered_before_loss": registered_before,
        "device_registered_at": utc_text(device.registered_at),
        "readings_continuous": largest_gap_s is not None and largest_gap_s <= allowed_gap_s,
        "largest_gap_s": largest_gap_s,
        "allowed_gap_s": allowed_gap_s,
        "readings_before_loss": sum(1 for r in readings if lookback_start <= r.ts < loss),
        "wearable_worn": _worn(device, readings, loss),
    }


def _worn(device: DeviceFacts, readings: Sequence[Reading], loss: datetime) -> bool | None:
    """For a wearable: off the body at any flag near the loss, else on it if any flag says so; None: no flag."""
    if device.kind != "wearable":
        return None
    near = timedelta(seconds=WORN_NEAR_S)
    flags = {r.value for r in readings if r.metric == WORN_METRIC and abs(r.ts - loss) <= near}
    if 0 in flags:
        return False
    return True if 1 in flags else None


def evidence_package(*, claim_id: str, incident: IncidentFacts, device: DeviceFacts, readings: Sequence[Reading],
                     alerts: Sequence[AlertRecord], outreach: Sequence[OutreachRecord], checks: Mapping[str, Any],
                     window: tuple[datetime, datetime], built_at: datetime) -> dict[str, Any]:
    """The package served at `/claims/{id}/evidence`, as JSON data (times as RFC 3339 text)."""
    start, end = window
    inside = [r for r in readings if start <= r.ts <= end]
    kept = inside
    if len(inside) > MAX_READINGS:
        # The readings nearest the loss tell the most; the minute aggregates still cover the whole window.
        kept = sorted(inside, key=lambda r: (abs(r.ts - incident.started_at), r.ts, r.metric, r.seq))[:MAX_READINGS]
    kept = sorted(kept, key=lambda r: (r.ts, r.metric, r.seq, r.value))
    return {
        "claim_id": claim_id,
        "built_at": utc_text(built_at),
        "incident": {
            "id": incident.id, "kind": incident.kind, "covered_by": incident.covered_by,
            "member_id": incident.member_id, "device_id": incident.device_id, "alert_id": incident.alert_id,
            "alert_type": incident.alert_type, "location": incident.location,
            "started_at": utc_text(incident.started_at), "condition_met_at": utc_text(incident.condition_met_at),
            "detected_at": utc_text(incident.detected_at), "rule_evidence": dict(incident.evidence),
        },
        "device": {
            "device_id": device.device_id, "kind": device.kind, "location": device.location,
            "report_interval_s": device.report_interval_s, "registered_at": utc_text(device.registered_at),
        },
        "window": {"from": utc_text(start), "to": utc_text(end)},
        "readings": [{"ts": utc_text(r.ts), "metric": r.metric, "value": r.value, "seq": r.seq} for r in kept],
        "readings_truncated": len(kept) < len(inside),
        "minutes": minute_aggregates(inside),
        "alerts": [_alert(a) for a in sorted(alerts, key=lambda a: (a.triggered_at, a.id))],
        "outreach": [
            {"alert_id": o.alert_id, "step": o.step, "to": o.to, "channel": o.channel, "status": o.status,
             "reason": o.reason, "attempts": o.attempts, "at": utc_text(o.at)}
            for o in sorted(outreach, key=lambda o: (o.at, o.alert_id, o.step, o.to, o.channel))
        ],
        "checks": dict(checks),
    }


def _alert(alert: AlertRecord) -> dict[str, Any]:
    def text(moment: datetime | None) -> str | None:
        return utc_text(moment) if moment is not None else None

    return {
        "id": alert.id, "type": alert.type, "severity": alert.severity, "status": alert.status,
        "triggered_at": text(alert.triggered_at), "raised_at": text(alert.raised_at),
        "cleared_at": text(alert.cleared_at), "resolved_at": text(alert.resolved_at),
        "acknowledged_at": text(alert.acknowledged_at), "acknowledged_by": alert.acknowledged_by,
        "outcome": alert.outcome, "history": [dict(entry) for entry in alert.history],
    }


def encode(package: Mapping[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8; the same package always gives the same bytes."""
    return json.dumps(package, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=_plain).encode("utf-8")


def _plain(value: object) -> Any:
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON data: {value!r}")


def digest(data: bytes) -> str:
    """`sha256:` and the hex SHA-256 of exactly these bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _condition(incident: IncidentFacts) -> tuple[str, Comparison, float] | None:
    """The metric and condition of the incident's span rule, as it was applied (care-plan overrides included)."""
    parameters = incident.evidence.get("parameters")
    if isinstance(parameters, Mapping) and {"metric", "op", "threshold"} <= parameters.keys():
        return parameters["metric"], parameters["op"], parameters["threshold"]
    rule = _SPAN_RULES.get(incident.alert_type)
    return (rule.metric, rule.op, rule.threshold) if rule is not None else None


def last_detected(incident: IncidentFacts, readings: Sequence[Reading], *,
                  until: datetime | None = None) -> datetime | None:
    """The last reading since the loss began (up to `until`) that still met the incident's condition."""
    condition = _condition(incident)
    if condition is None:
        return None
    metric, op, threshold = condition
    found = [r.ts for r in readings if r.metric == metric and incident.started_at <= r.ts
             and (until is None or r.ts <= until) and compare(r.value, op, threshold)]
    return max(found, default=None)


def loss_end(incident: IncidentFacts, alert: AlertRecord | None, readings: Sequence[Reading] = ()) -> datetime | None:
    """When the loss stopped being observed; None while the alert has not cleared (or for a fall).

    The alert clears only after its clear condition has held for the rule's `clear_s`, so the end is the
    last reading that still met the condition, or without readings, `clear_s` before the clear.
    """
    if alert is None or alert.cleared_at is None:
        return None
    last = last_detected(incident, readings, until=alert.cleared_at)
    if last is not None:
        return last
    parameters = incident.evidence.get("parameters")
    clear_s = parameters.get("clear_s") if isinstance(parameters, Mapping) else None
    if not isinstance(clear_s, int | float):
        rule = _SPAN_RULES.get(incident.alert_type)
        clear_s = rule.clear_s if rule is not None else 0
    return max(alert.cleared_at - timedelta(seconds=clear_s), incident.started_at)
