"""The scheduler's periodic jobs, which `python -m scheduler` runs on APScheduler.

- retention: trimming telemetry past `VIGIL_RETENTION_DAYS`, at start and then hourly; on TimescaleDB
  its retention and refresh policies are set from the current value first.
- device_offline: every 15 s, the devices silent too long (read here, judged by `vigil.rules.offline`)
  raised, and those heard again cleared, as `AlertChanged` events on the alerts topic. The events are
  idempotent, so a run repeated before the alerts service has applied the last one is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import psycopg
from confluent_kafka import KafkaException, Producer

from vigil.events import AlertChanged
from vigil.rules.offline import DEVICE_OFFLINE, Device, OfflineAlert, judge_offline, pipeline_live_since
from vigil.settings import Settings
from vigil.storage.retention import trim
from vigil.storage.schema import uses_timescale
from vigil.storage.timescale import apply_policies
from vigil.topics import ALERTS, HEARTBEAT_GAP_S

log = logging.getLogger(__name__)
OFFLINE_EVERY_S = 15
# In the state folder, touched after every successful device_offline run; the compose healthcheck
# calls the scheduler unhealthy when it is older than ALIVE_MAX_AGE_S.
ALIVE_FILE = "scheduler.alive"
ALIVE_MAX_AGE_S = 4 * OFFLINE_EVERY_S
PUBLISH_TIMEOUT_S = 20

# Each candidate device with its newest message and its latest device_offline alert (an open one
# first). The WHERE is a cheap superset of the devices whose alert could change now: silent past
# the threshold even counted from their newest message or registration, or with an open alert;
# the judgement itself is `judge_offline`'s.
_OFFLINE_ROWS = """
SELECT d.device_id, d.member_id, d.report_interval_s, d.enabled, d.created_at, l.last_message_at,
       a.id, a.member_id, a.triggered_at, (a.evidence->>'silent_since')::timestamptz, a.status <> 'resolved'
FROM devices d
LEFT JOIN device_liveness l USING (device_id)
LEFT JOIN LATERAL (
    SELECT id::text AS id, member_id, triggered_at, evidence, status FROM alerts
    WHERE alerts.device_id = d.device_id AND alerts.type = %(type)s
    ORDER BY status <> 'resolved' DESC, raised_at DESC LIMIT 1
) a ON true
WHERE (d.enabled AND GREATEST(l.last_message_at, d.created_at)
                     < %(now)s - d.report_interval_s * %(intervals)s * interval '1 second')
   OR EXISTS (SELECT 1 FROM alerts o WHERE o.device_id = d.device_id AND o.type = %(type)s
              AND o.status <> 'resolved')
"""


def trim_telemetry(settings: Settings) -> None:
    """Apply `VIGIL_RETENTION_DAYS` as it is now: rows deleted here, and on TimescaleDB its policies."""
    try:
        timescale = uses_timescale(settings.database_url)
        with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as conn:
            if timescale:
                apply_policies(conn, retention_days=settings.retention_days)
            deleted = trim(conn, retention_days=settings.retention_days, timescale=timescale)
    except psycopg.Error as e:
        # The next run tries again; nothing is lost by trimming an hour late.
        log.warning("retention job failed: %s", e)
        return
    log.info("retention: deleted %s", deleted)


def _offline_inputs(conn: psycopg.Connection) -> tuple[datetime, datetime | None, list[Device],
                                                      dict[str, OfflineAlert]]:
    # The database's clock throughout: heartbeat runs and registrations are stamped by it.
    now = conn.execute("SELECT now()").fetchone()[0]
    runs = conn.execute("SELECT first_at, last_at FROM pipeline_heartbeats").fetchall()
    params = {"now": now, "type": DEVICE_OFFLINE.type, "intervals": DEVICE_OFFLINE.silent_intervals}
    devices: list[Device] = []
    alerts: dict[str, OfflineAlert] = {}
    for row in conn.execute(_OFFLINE_ROWS, params):
        device_id, member_id, interval_s, enabled, created_at, last_message_at, *alert = row
        devices.append(Device(device_id=device_id, member_id=member_id, report_interval_s=interval_s,
                              enabled=enabled, created_at=created_at, last_message_at=last_message_at))
        if alert[0] is not None:
            alerts[device_id] = OfflineAlert(alert_id=alert[0], member_id=alert[1], triggered_at=alert[2],
                                             silent_since=alert[3], open=alert[4])
    return now, pipeline_live_since(runs, now, max_gap_s=HEARTBEAT_GAP_S), devices, alerts


def check_offline(settings: Settings, producer: Producer) -> None:
    """Raise `device_offline` for devices silent too long, clear it for those heard again."""
    try:
        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            now, live_since, devices, alerts = _offline_inputs(conn)
    except psycopg.Error as e:
        # The next run judges again from the same rows; nothing is lost by a 15 s delay.
        log.warning("device_offline check failed: %s", e)
        return
    if live_since is None:
        log.info("device_offline: no live pipeline heartbeat; no device judged silent")
    changes = judge_offline(now, live_since=live_since, devices=devices, alerts=alerts)
    if not changes or publish_alert_changes(producer, changes):
        mark_alive(settings.state_dir)


def mark_alive(state_dir: Path) -> None:
    """Stamp the liveness file: a device_offline run judged every device and Kafka holds its events.

    The container healthcheck reads the file's age (docker-compose.yml), so a scheduler whose jobs
    stopped, or that cannot reach the database or Kafka, shows as unhealthy.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / ALIVE_FILE).touch()
    except OSError as e:
        log.warning("cannot stamp %s: %s", state_dir / ALIVE_FILE, e)


def publish_alert_changes(producer: Producer, changes: Sequence[AlertChanged]) -> bool:
    """Publish events keyed by device id and wait until Kafka holds them; False when some are not."""
    failures: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    try:
        for change in changes:
            producer.produce(ALERTS, key=change.device_id.encode(), value=change.model_dump_json().encode(),
                             on_delivery=delivered)
        undelivered = producer.flush(PUBLISH_TIMEOUT_S)
    except (KafkaException, BufferError) as e:
        # What was not delivered is published again by the next run: the rows have not changed.
        log.warning("device_offline: publishing failed: %s", e)
        return False
    if failures or undelivered:
        log.warning("device_offline: %d of %d events not delivered (%s); the next run retries",
                    len(failures) + undelivered, len(changes), failures[:1])
        return False
    raised = sum(c.change == "raised" for c in changes)
    log.info("device_offline: %d raised, %d cleared", raised, len(changes) - raised)
    return True
