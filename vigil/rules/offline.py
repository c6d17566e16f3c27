"""`device_offline`: which devices have gone silent, and which silent ones have spoken again.

Pure: plain data in, `AlertChanged` events out. The scheduler reads the rows and publishes the
events. Silence is wall-clock time, and it only counts while Vigil's own pipeline was provably
live (its heartbeats reached the database), so a restart of Vigil, or a Kafka or ingest outage,
does not look like every device going quiet at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vigil.events import AlertChanged, Severity, alert_id
from vigil.timefmt import utc_text


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineRule:
    """No message for `silent_intervals` × the device's report interval."""

    type: str = "device_offline"
    silent_intervals: int = 3
    severity: Severity = "medium"


DEVICE_OFFLINE = OfflineRule()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """A registered device and the receive time of its newest stored message (None: never heard)."""

    device_id: str
    member_id: str
    report_interval_s: int
    enabled: bool
    created_at: datetime
    last_message_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineAlert:
    """A device's latest `device_offline` alert; `silent_since` is from its evidence when recorded."""

    alert_id: str
    member_id: str
    triggered_at: datetime
    silent_since: datetime | None
    open: bool


def pipeline_live_since(runs: Iterable[tuple[datetime, datetime]], now: datetime, *,
                        max_gap_s: float) -> datetime | None:
    """Since when the pipeline has been live, given each component's unbroken heartbeat run.

    A run is (first_at, last_at). Components whose last heartbeat is older than `max_gap_s` are
    down now; of the others, the earliest start counts, since any live ingest instance carries
    device messages. None when nothing is live: then no silence can be told from an outage.
    """
    live = [first for first, last in runs if (now - last).total_seconds() <= max_gap_s]
    return min(live) if live else None


def judge_offline(
    now: datetime,
    *,
    live_since: datetime | None,
    devices: Iterable[Device],
    alerts: Mapping[str, OfflineAlert],
    rule: OfflineRule = DEVICE_OFFLINE,
) -> list[AlertChanged]:
    """The raises and clears due now; `alerts` holds each device's latest offline alert by device id.

    Idempotent: a device with an open alert is never raised again, and the id of an episode is a
    function of when its silence began, so judging the same rows twice yields the same events.
    """
    changes: list[AlertChanged] = []
    for device in devices:
        latest = alerts.get(device.device_id)
        threshold = timedelta(seconds=device.report_interval_s * rule.silent_intervals)
        if latest is not None and latest.open:
            silent_since = latest.silent_since or latest.triggered_at - threshold
            if device.last_message_at is None or device.last_message_at <= silent_since:
                continue
            changes.append(_cleared(rule, device, latest, threshold, silent_since, now, live_since))
            latest = None
        raised = _raised(rule, device, threshold, now, live_since)
        if raised is not None and (latest is None or latest.alert_id != raised.alert_id):
            # An episode a person resolved while the device stayed silent is not raised again.
            changes.append(raised)
    return changes


def _raised(rule: OfflineRule, device: Device, threshold: timedelta, now: datetime,
            live_since: datetime | None) -> AlertChanged | None:
    if not device.enabled or live_since is None:
        return None
    # Silence before the device existed, or while Vigil could not have heard it, does not count.
    silent_since = max(m for m in (device.last_message_at, live_since, device.created_at) if m is not None)
    if now - silent_since <= threshold:
        return None
    triggered_ms = _ms(silent_since + threshold)
    return AlertChanged(
        change="raised", alert_id=alert_id(device.device_id, rule.type, triggered_ms), type=rule.type,
        severity=rule.severity, member_id=device.member_id, device_id=device.device_id,
        triggered_at_ms=triggered_ms, detected_at_ms=_ms(now),
        evidence=_evidence(rule, device, threshold, silent_since, live_since),
    )


def _cleared(rule: OfflineRule, device: Device, alert: OfflineAlert, threshold: timedelta, silent_since: datetime,
             now: datetime, live_since: datetime | None) -> AlertChanged:
    assert device.last_message_at is not None
    return AlertChanged(
        change="cleared", alert_id=alert.alert_id, type=rule.type, severity=rule.severity,
        member_id=alert.member_id, device_id=device.device_id, triggered_at_ms=_ms(alert.triggered_at),
        detected_at_ms=_ms(now), cleared_at_ms=_ms(device.last_message_at),
        evidence=_evidence(rule, device, threshold, silent_since, live_since),
    )


def _evidence(rule: OfflineRule, device: Device, threshold: timedelta, silent_since: datetime,
              live_since: datetime | None) -> dict:
    return {
        "rule": rule.type,
        "parameters": {"silent_intervals": rule.silent_intervals, "report_interval_s": device.report_interval_s,
                       "threshold_s": int(threshold.total_seconds())},
        # Microseconds: `silent_since` is read back from the evidence and compared with message times.
        "last_message_at": _exact_text(device.last_message_at),
        "silent_since": _exact_text(silent_since),
        "pipeline_live_since": _exact_text(live_since),
    }


def _ms(moment: datetime) -> int:
    # Integer arithmetic: the alert id is derived from this, so it must not wobble with float rounding.
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _exact_text(moment: datetime | None) -> str | None:
    return None if moment is None else utc_text(moment, "microseconds")

