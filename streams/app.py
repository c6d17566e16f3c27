"""The Faust application: thin agents over Kafka topics around the storage and detection core.

- `process_telemetry`: each batch of telemetry records is stored (COPY, idempotent on
  (device_id, seq)), then judged by the rules over per-device state in a table; alert changes go
  to the alerts topic, incidents to the incidents topic. One agent for both keeps Faust's
  per-event cost paid once, and an alert is never raised for readings not yet stored.
- `store_dead_letters`: refusals from ingest -> the dead_letters table.
- `store_heartbeats` (`streams.heartbeats`): ingest's heartbeats -> pipeline_heartbeats.
- a task following the care-plans topic, so members' plans apply without a restart.
- a timer that stops the worker if records were skipped inside the consumer (`commit_watch`).
"""

from __future__ import annotations

import logging
import time

import faust
import orjson

from streams import faust_fixes, metrics
from streams.batches import finish
from streams.care_plans import CarePlans
from streams.commit_watch import add_commit_watch
from streams.database import RetryingSession
from streams.detection import detect
from streams.heartbeats import add_heartbeat_agent
from vigil.settings import Settings
from vigil.storage import sinks
from vigil.telemetry import DeadLetter
from vigil.topics import ALERTS, DEAD_LETTERS, INCIDENTS, TELEMETRY

log = logging.getLogger(__name__)
BATCH = 5000
# How long a batch waits to fill: the floor on publish -> alert latency at low load.
BATCH_WAIT_S = 0.05


def build_app(settings: Settings) -> faust.App:
    """A Faust app wired to the settings' Kafka and PostgreSQL."""
    faust_fixes.apply()
    app = faust.App(
        "vigil-streams",
        broker=settings.kafka_url,
        datadir=str(settings.state_dir / "streams"),
        store="memory://",  # state is rebuilt from the changelog topics on start
        value_serializer="raw",
        web_enabled=False,
        topic_partitions=settings.telemetry_partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Tuned for a quick group join on a single host; Faust's defaults take about 30 s.
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_rebalance_timeout=20,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
    )
    telemetry = app.topic(TELEMETRY, value_serializer="raw", partitions=settings.telemetry_partitions)
    alerts = app.topic(ALERTS, key_serializer="raw", value_serializer="raw")
    incidents = app.topic(INCIDENTS, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(DEAD_LETTERS, value_serializer="raw")
    # Keys are raw device ids (key_type=bytes selects Faust's raw key codec; a schema would not) and
    # are placed by the producer's murmur2 partitioner, the hashing ingest uses for telemetry, so a
    # device's state lives on the partition of its records.
    device_state = app.Table("device-state", default=dict, partitions=settings.telemetry_partitions,
                             key_type=bytes, use_partitioner=True)
    readings_db = RetryingSession(settings.database_url, sinks.prepare)
    letters_db = RetryingSession(settings.database_url, _no_prepare)
    plans = CarePlans(settings.kafka_bootstrap)

    async def send_alert(key: bytes, value: bytes) -> None:
        await (await alerts.send(key=key, value=value))

    async def send_incident(key: bytes, value: bytes) -> None:
        await (await incidents.send(key=key, value=value))

    @app.task
    async def follow_care_plans() -> None:
        await plans.follow()

    @app.agent(telemetry)
    async def process_telemetry(stream):
        async for values in stream.take(BATCH, within=BATCH_WAIT_S):
            await finish(store_and_judge([orjson.loads(v) for v in values]))

    async def store_and_judge(records: list[dict]) -> None:
        started = time.perf_counter()
        inserted = await readings_db.run(lambda conn: sinks.store_records(conn, records))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.READINGS_STORED.inc(inserted)
        # Judge nobody before the plans that existed at start-up are known.
        await plans.ready.wait()
        await detect(records, table=device_state, plans=plans, send_alert=send_alert,
                     send_incident=send_incident)

    @app.agent(dead_letters)
    async def store_dead_letters(stream):
        async for values in stream.take(1000, within=0.5):
            letters = [DeadLetter.model_validate_json(v) for v in values]
            await finish(letters_db.run(lambda conn, ls=letters: sinks.store_dead_letters(conn, ls)))

    add_heartbeat_agent(app, settings)
    add_commit_watch(app)
    return app


async def _no_prepare(_conn) -> None:
    return None
