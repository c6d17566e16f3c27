"""The Faust application: thin agents over Kafka topics around the storage and detection core.

- `process_telemetry`: each batch of telemetry records is stored (COPY, idempotent on
  (device_id, seq); a seq sent again with other readings becomes a `seq_reused` dead letter),
  then judged by the rules over per-device state (`streams.device_states`: live in memory, written
  to a changelog-backed table once per commit); alert changes go to the alerts topic, incidents to
  the incidents topic. One agent for both keeps Faust's
  per-event cost paid once, and an alert is never raised for readings not yet stored; a reading
  behind the lateness allowance is judged against the stored readings of its window, read back
  on the same connection (`streams.stored_readings`).
- `store_dead_letters`: refusals from ingest -> the dead_letters table.
- Both decode each record on its own (`streams.records`) and write through `RetryingSession`: a
  record that cannot be read or a row the database refuses becomes a dead letter, never a jam.
- `store_heartbeats` (`streams.heartbeats`): ingest's heartbeats -> pipeline_heartbeats.
- a task following the care-plans topic, so members' plans apply without a restart.
- a timer that stops the worker if records were skipped inside the consumer (`commit_watch`), and
  a watch that stops it if a table recovery stops moving (`recovery_watch`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import faust
from aiokafka.partitioner import murmur2

from streams import faust_fixes, metrics, stored_readings
from streams.care_plan_feed import CarePlans
from streams.commit_watch import add_commit_watch
from streams.database import RetryingSession
from streams.detection import detect
from streams.device_states import DeviceStates
from streams.heartbeats import add_heartbeat_agent
from streams.records import decode_dead_letters, decode_telemetry
from streams.recovery_watch import add_recovery_watch
from streams.shielding import finish
from vigil.settings import Settings
from vigil.storage import sinks
from vigil.telemetry import DeadLetter
from vigil.topics import ALERTS, DEAD_LETTERS, INCIDENTS, TELEMETRY

log = logging.getLogger(__name__)
BATCH = 5000
# How long a batch waits to fill: the floor on publish -> alert latency at low load.
BATCH_WAIT_S = 0.05
# How often offsets are committed, and so how often each device judged since is written to the
# changelog (`streams.device_states`). Measured on `vigil bench` (quiet machine, one run each), 2 s
# did worse than 1 s on every figure: 3,710 against 5,240 single-reading messages/s, 0.063 against
# 0.048 ms of CPU per reading. A crash makes the worker judge up to this much again, which changes
# nothing (see docs/architecture.md).
COMMIT_INTERVAL_S = 1.0
# How the worker's app consumes and commits; the bench's bare-Faust ceiling uses the same.
CONSUMING = {
    "value_serializer": "raw",
    "web_enabled": False,
    "topic_disable_leader": True,
    "consumer_auto_offset_reset": "earliest",
    # Tuned for a quick group join on a single host; Faust's defaults take about 30 s.
    "broker_session_timeout": 10,
    "broker_heartbeat_interval": 1,
    "broker_rebalance_timeout": 20,
    "broker_commit_interval": COMMIT_INTERVAL_S,
    "stream_wait_empty": False,
    # How many records the telemetry topic's buffer holds ahead of the agent before Faust pauses
    # fetching (its default is 4,096). A worker behind its partitions keeps it full, each record a
    # decoded Faust event: `vigil bench --fleet 100000` measured worker memory of 2.02 KiB per
    # device with 4,096 and 1.57 KiB with 1,024 (both with two malloc arenas). A worker that
    # keeps up holds far fewer (a 50 ms batch at 6,000 records/s is 300).
    # Faust's STREAM_BUFFER_MAXSIZE in the environment overrides it.
    "stream_buffer_maxsize": 1024,
}
# How often a batch waiting for the tables' recovery after a rebalance checks that one is under way.
READY_CHECK_S = 5.0


def build_app(settings: Settings) -> faust.App:
    """A Faust app wired to the settings' Kafka and PostgreSQL."""
    faust_fixes.apply()
    app = faust.App(
        "vigil-streams",
        broker=settings.kafka_url,
        datadir=str(settings.state_dir / "streams"),
        store="memory://",  # state is rebuilt from the changelog topics on start
        topic_partitions=settings.telemetry_partitions,
        producer_acks=-1,
        **CONSUMING,
    )
    telemetry = app.topic(TELEMETRY, value_serializer="raw", partitions=settings.telemetry_partitions)
    alerts = app.topic(ALERTS, key_serializer="raw", value_serializer="raw")
    incidents = app.topic(INCIDENTS, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(DEAD_LETTERS, value_serializer="raw")
    # Keys are raw device ids (key_type=bytes selects Faust's raw key codec; a schema would not) and
    # are placed by the producer's murmur2 partitioner, the hashing ingest uses for telemetry, so a
    # device's state lives on the partition of its records. Values are encoded by `DeviceState`
    # itself when they are written (a snapshot: the live state goes on changing); value_type=bytes
    # selects the raw codec, as key_type does for keys.
    device_state = app.Table("device-state", partitions=settings.telemetry_partitions, key_type=bytes,
                             value_type=bytes, use_partitioner=True)
    states = DeviceStates(device_state, owned=lambda keys: _owned(app, keys, settings.telemetry_partitions))
    readings_db = RetryingSession(settings.database_url, sinks.prepare)
    letters_db = RetryingSession(settings.database_url)
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
            await finish(store_and_judge(values))

    async def store_and_judge(values: list[bytes]) -> None:
        taken_in = states.generation
        now_ms = int(time.time() * 1000)
        records, bad = decode_telemetry(values, topic=TELEMETRY, now_ms=now_ms)
        started = time.perf_counter()
        # A batch the database refuses for its content is written again row by row (never retried).
        stored = await readings_db.run(
            lambda conn: sinks.store_records(conn, records, bad),
            refused=lambda conn: sinks.store_records_singly(conn, records, bad, now_ms=now_ms))
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.READINGS_STORED.inc(stored.readings)
        _count_letters([*bad, *stored.letters], stored.lost)
        # Judge nobody before the plans that existed at start-up are known, nor during a rebalance.
        await plans.ready.wait()
        await _recovered(app, states)
        async with states.lock:
            await detect(stored.records, states=states, plans=plans, send_alert=send_alert,
                         send_incident=send_incident, read_stored=read_stored, taken_in=taken_in)

    async def hand_over_states(sender, revoked, **_) -> None:
        await states.hand_over(app.producer.flush)  # on the changelog before a new owner recovers it

    def states_recovered(sender, **_) -> None:
        states.recovered()

    faust_fixes.before_commit(app, states.before_commit)
    app.on_partitions_revoked.connect(hand_over_states)
    app.on_rebalance_complete.connect(states_recovered)

    async def read_stored(wanted):
        """Stragglers' windows, read on the agent's connection after their batch is stored."""
        return await readings_db.run(lambda conn: stored_readings.read_windows(conn, wanted))

    @app.agent(dead_letters)
    async def store_dead_letters(stream):
        async for values in stream.take(1000, within=0.5):
            now_ms = int(time.time() * 1000)
            letters, bad = decode_dead_letters(values, topic=DEAD_LETTERS, now_ms=now_ms)
            batch = [*letters, *bad]
            stored = await finish(letters_db.run(
                lambda conn, b=batch: sinks.store_dead_letters(conn, b),
                refused=lambda conn, b=batch, t=now_ms: sinks.store_dead_letters_singly(conn, b, now_ms=t)))
            _count_letters([*bad, *stored.letters], stored.lost)

    add_heartbeat_agent(app, settings)
    add_commit_watch(app)
    add_recovery_watch(app)
    return app


async def _recovered(app: faust.App, states: DeviceStates) -> None:
    """Wait until the tables are recovered after a rebalance.

    Faust's "rebalance complete" signal says so; should it never come (Faust skips recovery when
    the group's generation moved on meanwhile), a rebalance that Faust itself has left behind says
    it too, rather than leaving the agent waiting for good.
    """
    while not states.ready.is_set():
        try:
            await asyncio.wait_for(states.ready.wait(), READY_CHECK_S)
        except TimeoutError:
            if not (app.rebalancing or app.in_recovery):
                log.warning("no rebalance-complete signal within %.0f s of a rebalance that has ended; "
                            "judging resumes", READY_CHECK_S)
                states.recovered()


def _owned(app: faust.App, keys: Iterable[bytes], partitions: int) -> set[bytes]:
    """The device keys whose telemetry partition (murmur2, as the producers place them) is assigned here."""
    assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == TELEMETRY}
    return {key for key in keys if (murmur2(key) & 0x7FFFFFFF) % partitions in assigned}


def _count_letters(raised: Iterable[DeadLetter], lost: int) -> None:
    """Count the dead letters the worker raised itself, and the rows it had to drop."""
    for letter in raised:
        metrics.DEAD_LETTERS.labels(letter.reason).inc()
    if lost:
        metrics.UNSTORABLE.inc(lost)
