"""The detect step of the telemetry agent: group a batch by device, judge each, publish what changed.

State is read from and written back to the Faust table once per device per batch; alert changes
and incidents are on Kafka before the state that remembers them is saved, so a crash in between
repeats them (harmless: their ids are natural keys) rather than losing them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from streams import metrics
from streams.care_plans import CarePlans
from streams.rules.evaluate import judge_device
from streams.rules.state import DeviceState

log = logging.getLogger(__name__)
Send = Callable[[bytes, bytes], Awaitable[None]]


async def detect(records: Iterable[dict], *, table, plans: CarePlans, send_alert: Send,
                 send_incident: Send) -> None:
    """Judge a batch of telemetry records (dicts shaped like TelemetryRecord)."""
    by_device: dict[str, list] = defaultdict(list)
    members: dict[str, str] = {}
    for record in records:
        by_device[record["device_id"]].extend(record["readings"])
        members[record["device_id"]] = record["member_id"]
    now_ms = int(time.time() * 1000)
    for device_id, readings in by_device.items():
        key = device_id.encode()
        member_id = members[device_id]
        rules, plan_version = plans.rules_for(member_id)
        state = DeviceState.from_dict(table[key])
        try:
            judgement = judge_device(state, readings, rules=rules, device_id=device_id, member_id=member_id,
                                     now_ms=now_ms)
        except Exception:
            # A rule bug must not stop detection for every other device, nor storage.
            metrics.DETECT_ERRORS.inc()
            log.exception("detection failed for device %s; its readings in this batch are not judged", device_id)
            continue
        for change in judgement.alerts:
            if plan_version:
                change.evidence["care_plan_version"] = plan_version
            await send_alert(key, change.model_dump_json().encode())
            metrics.ALERT_CHANGES.labels(change.type, change.change).inc()
        for incident in judgement.incidents:
            await send_incident(incident.member_id.encode(), incident.model_dump_json().encode())
            metrics.INCIDENTS.labels(incident.kind).inc()
        if judgement.too_late:
            metrics.READINGS_TOO_LATE.inc(judgement.too_late)
        table[key] = state.to_dict()
