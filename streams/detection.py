"""The detect step of the telemetry agent: group a batch by device, judge each, publish what changed.

Each device's state is taken from `streams.device_states`, judged, and marked changed once its alert
changes and incidents are on Kafka; it reaches the changelog at the next commit, under the same lock
as this step (see that module for why a crash then repeats work rather than losing it).

Readings older than a device's settled time (stragglers) are judged against the stored readings
of their window (`vigil.rules.stragglers`): the windows of the whole batch are read back in one
query, before any device is judged, and only for a batch that holds a straggler.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence

from streams import metrics
from streams.care_plan_feed import CarePlans
from streams.device_states import DeviceStates
from vigil.rules.lateness import judge_device, late_windows
from vigil.rules.stragglers import Window

log = logging.getLogger(__name__)
Send = Callable[[bytes, bytes], Awaitable[None]]
Reading = tuple[int, str, float]
# Reads the stored readings of (device id, window) pairs: device id -> its readings.
ReadStored = Callable[[Sequence[tuple[str, Window]]], Awaitable[dict[str, list[Reading]]]]


async def detect(records: Iterable[dict], *, states: DeviceStates, plans: CarePlans, send_alert: Send,
                 send_incident: Send, read_stored: ReadStored | None = None, taken_in: int | None = None) -> None:
    """Judge a batch of telemetry records (dicts shaped like TelemetryRecord).

    `taken_in`: the states' rebalance generation when the batch was taken; after a rebalance since,
    only the devices still on this worker's partitions are judged. Call with `states.lock` held.
    """
    by_device: dict[str, list] = defaultdict(list)
    members: dict[str, str] = {}
    for record in records:
        by_device[record["device_id"]].extend(record["readings"])
        members[record["device_id"]] = record["member_id"]
    if taken_in is not None and taken_in != states.generation:
        owned = states.still_owned(device_id.encode() for device_id in by_device)
        moved = [device_id for device_id in by_device if device_id.encode() not in owned]
        for device_id in moved:
            del by_device[device_id]
        metrics.DEVICES_MOVED.inc(len(moved))
    now_ms = int(time.time() * 1000)
    judging = []
    wanted: list[tuple[str, Window]] = []
    for device_id, readings in by_device.items():
        rules, plan_version = plans.rules_for(members[device_id])
        key = device_id.encode()
        state = states.get(key)
        judging.append((device_id, key, readings, rules, plan_version, state))
        if read_stored is not None:
            wanted += [(device_id, window) for window in late_windows(state, readings, rules)]
    stored = await _read(read_stored, wanted) if wanted else {}
    for device_id, key, readings, rules, plan_version, state in judging:
        member_id = members[device_id]
        try:
            judgement = judge_device(state, readings, rules=rules, device_id=device_id, member_id=member_id,
                                     now_ms=now_ms, stored=stored.get(device_id))
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
        if judgement.judged_late:
            metrics.READINGS_JUDGED_LATE.inc(judgement.judged_late)
        states.changed(key)


async def _read(read_stored: ReadStored, wanted: list[tuple[str, Window]]) -> dict[str, list[Reading]]:
    """The stored readings of the stragglers' windows; none when they cannot be read.

    The stragglers are then counted too late, as before stored readings were read back: a read that
    keeps failing must not stop detection for every reading in time.
    """
    started = time.perf_counter()
    try:
        found = await read_stored(wanted)
    except Exception:
        metrics.STORED_READ_ERRORS.inc()
        log.exception("reading back the stored readings of %d straggler windows failed; "
                      "their stragglers are not judged", len(wanted))
        return {}
    metrics.STORED_READ_SECONDS.observe(time.perf_counter() - started)
    return found
