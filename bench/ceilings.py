"""Each stage's own ceiling, measured before Vigil's services run: broker, Kafka, COPY, and the CPU cores.

- MQTT: gateways publish at QoS 1 into Mosquitto while one subscriber, logged in as ingest and in
  ingest's shared group, counts what arrives: the broker's fan-in to a single consumer.
- Kafka: a producer configured like ingest's sends telemetry-sized records to a bench topic.
- COPY: `vigil.storage.sinks.store_records`, the stream worker's writer, on synthetic records.
- CPU: ingest's validation and the detect agent's rule evaluation in-process, without any I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Sequence

import paho.mqtt.client as mqtt
import psycopg
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql

from bench.load import HOME_SAMPLE, Login, PayloadMaker, Publishers, PublishJob, connect, encode, share, split
from bench.report import Ceiling, per_message
from vigil.broker_accounts import (
    ADMIN_USERNAME,
    INGEST_SUBSCRIPTION,
    INGEST_USERNAME,
    BrokerAccounts,
    ingest_client_id,
)
from vigil.settings import Settings
from vigil.storage import sinks
from vigil.telemetry import RegisteredDevice, TelemetryRecord
from vigil.topics import HOT_PATH_FETCH_WAIT_MS

BENCH_TOPIC = "vigil.bench"
EMPTY_TOPIC = "vigil.bench.empty"
COPY_BATCH = 5000
# The stream worker's detect agent takes up to this many records at a time.
DETECT_BATCH = 2000
_quiet = logging.getLogger("bench.librdkafka")
_quiet.setLevel(logging.CRITICAL)


def ceiling_prefix(run_id: str) -> str:
    return f"bench-ceiling-{run_id}"


def device_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-d{n:04d}" for n in range(count)]


# -- MQTT --------------------------------------------------------------------------------------

class ArrivalCounter:
    """A subscriber in ingest's shared group that counts the messages of some devices as they arrive.

    It logs in as ingest but with its own client id, a clean start and no session expiry, so the
    broker forgets it, and queues nothing for it, once it disconnects.
    """

    def __init__(self, settings: Settings, ingest_password: str, *, client_id: str, topic_prefix: str) -> None:
        self._settings = settings
        self._password = ingest_password
        self._topic_prefix = topic_prefix
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.count = 0
        self.last = 0.0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.username_pw_set(INGEST_USERNAME, ingest_password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u, _flags, reason, _props) -> None:
        if not reason.is_failure:
            client.subscribe(INGEST_SUBSCRIPTION, qos=1)

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic.startswith(self._topic_prefix):
            now = time.time()
            with self._lock:
                self.count += 1
                self.last = now

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        props.ReceiveMaximum = 1000  # what ingest allows in flight
        self._client.connect(self._settings.mqtt_host, self._settings.mqtt_port, keepalive=60, clean_start=True,
                             properties=props)
        self._client.loop_start()
        if not self._subscribed.wait(15):
            self.stop()
            raise RuntimeError(f"could not subscribe to {INGEST_SUBSCRIPTION} as {INGEST_USERNAME}")

    def wait(self, expected: int, idle_s: float) -> int:
        """Wait until `expected` arrived, or nothing arrived for `idle_s`; returns the count."""
        seen, since = -1, time.monotonic()
        while True:
            with self._lock:
                count = self.count
            if count >= expected:
                return count
            if count != seen:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since > idle_s:
                return count
            time.sleep(0.05)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def round_trips(self, client: mqtt.Client, device_id: str, samples: int) -> list[float]:
        """Milliseconds from publishing one message on `client` to its arrival here, one at a time."""
        waits = []
        for seq in range(samples):
            with self._lock:
                before = self.count
            started = time.perf_counter()
            client.publish(f"devices/{device_id}/telemetry", encode(device_id, seq, time.time(), [(time.time(),
                           "battery", 80)]), qos=1)
            deadline = started + 5
            while time.perf_counter() < deadline:
                with self._lock:
                    if self.count > before:
                        waits.append((time.perf_counter() - started) * 1000)
                        break
                time.sleep(0.0005)
            time.sleep(0.05)
        return waits


def detach_ingest_session(settings: Settings, ingest_password: str) -> bool:
    """Take ingest's offline session out of its shared group; True when it was in the group.

    Mosquitto deals a shared subscription's messages round-robin over every session in the group,
    offline ones included, and queues what falls to an offline one. Ingest's session persists
    between runs, so without this it would take half the ceiling's messages (and later refuse
    them as unknown devices). Ingest subscribes again whenever it connects, and its queued
    messages stay in the session untouched.
    """
    from ingest.service import SESSION_EXPIRY_S

    removed: list[bool] = []
    done = threading.Event()

    def on_connect(client: mqtt.Client, _u, flags, reason, _props) -> None:
        if reason.is_failure or not flags.session_present:
            done.set()
        else:
            client.unsubscribe(INGEST_SUBSCRIPTION)

    def on_unsubscribe(_c, _u, _mid, reason_codes, _props) -> None:
        # "No subscription existed" (0x11) is not a failure: a session without the group is fine too.
        removed.append(bool(reason_codes) and reason_codes[0].value == 0)
        done.set()

    # manual_ack and a receive maximum of 1: anything the session had queued stays queued for ingest.
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=ingest_client_id(ingest_password, settings.ingest_instance),
                         protocol=MQTTProtocolVersion.MQTTv5, manual_ack=True)
    client.username_pw_set(INGEST_USERNAME, ingest_password)
    client.on_connect = on_connect
    client.on_unsubscribe = on_unsubscribe
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = 1
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30, clean_start=False, properties=props)
    client.loop_start()
    try:
        if not done.wait(15):
            raise RuntimeError("the broker did not answer while detaching ingest's session from its group")
    finally:
        client.disconnect()
        client.loop_stop()
    return bool(removed and removed[0])


def broker_fan_in(settings: Settings, run_id: str, *, admin_password: str, ingest_password: str, messages: int,
                  devices: int, connections: int) -> tuple[Ceiling, list[float]]:
    """Single-reading messages from `connections` gateways to one subscriber in ingest's group.

    Also returns the idle round trip, publisher to subscriber, of single messages in milliseconds.
    """
    prefix = ceiling_prefix(run_id)
    logins = []
    with BrokerAccounts(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME, admin_password) as accounts:
        for n, group in enumerate(split(device_ids(prefix, devices), connections), start=1):
            password = secrets.token_urlsafe(24)
            username = accounts.ensure_gateway(f"{prefix}-gw{n}", group, password)
            logins.append(Login(client_id=username, username=username, password=password, device_ids=group))
    detached = detach_ingest_session(settings, ingest_password)
    counter = ArrivalCounter(settings, ingest_password, client_id=f"bench-ingest-{run_id}",
                             topic_prefix=f"devices/{prefix}-")
    counter.start()
    jobs = [PublishJob(host=settings.mqtt_host, port=settings.mqtt_port, login=login, readings=1, first_seq=1,
                       messages=count) for login, count in zip(logins, share(messages, len(logins)), strict=True)]
    publishers = Publishers(jobs)
    try:
        publishers.start()
        publishers.go()
        results = publishers.results(timeout_s=messages / 200 + 120)
        arrived = counter.wait(messages, idle_s=15)
        login = logins[0]
        # Its login's own client id (the broker allows no other): its publisher has exited.
        client = connect(settings.mqtt_host, settings.mqtt_port, login, window=10)
        try:
            round_trips = counter.round_trips(client, login.device_ids[0], samples=20)
        finally:
            client.disconnect()
            client.loop_stop()
    finally:
        publishers.stop()
        counter.stop()
        with BrokerAccounts(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME, admin_password) as accounts:
            for login in logins:
                accounts.disable(login.username)
    first = min(r.first_publish for r in results)
    acked = sum(r.acked for r in results)
    accepted_s = max(r.last_ack for r in results) - first
    note = f"broker acked {acked / accepted_s:,.0f} msg/s" if accepted_s > 0 else ""
    if arrived < messages:
        note += f"; {messages - arrived:,} never arrived"
    if detached:
        note += "; ingest's offline session was taken out of the group first"
    size = len(PayloadMaker(1)(f"{prefix}-d0000", 1, time.time()))
    return Ceiling(stage="Mosquitto fan-in",
                   measure=f"{len(logins)} gateways -> 1 sub in ingest's group, QoS 1",
                   count=arrived, seconds=counter.last - first, unit="msg", payload_bytes=arrived * size,
                   note=note.lstrip("; ")), round_trips


# -- Kafka --------------------------------------------------------------------------------------

def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "socket.timeout.ms": 5000}, logger=_quiet)


def create_bench_topic(settings: Settings) -> None:
    admin = _admin(settings)
    if BENCH_TOPIC in admin.list_topics(timeout=10).topics:
        return
    future = admin.create_topics([NewTopic(BENCH_TOPIC, num_partitions=settings.telemetry_partitions,
                                           replication_factor=1)])[BENCH_TOPIC]
    try:
        future.result(15)
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise


def delete_bench_topic(settings: Settings) -> str | None:
    """Delete the bench topic; returns why not when the broker refuses."""
    admin = _admin(settings)  # kept referenced: a collected client cancels its pending futures
    try:
        admin.delete_topics([BENCH_TOPIC], operation_timeout=15)[BENCH_TOPIC].result(20)
    except KafkaException as e:
        return str(e)
    return None


def sample_record(device_id: str, readings: int, now_ms: int) -> TelemetryRecord:
    """A record shaped and sized like one ingest makes from a home hub's message."""
    sample = [(now_ms - 1000 * i, metric, float(value)) for i, (metric, value) in enumerate(HOME_SAMPLE[:readings])]
    return TelemetryRecord(device_id=device_id, member_id="bench-member-0001", seq=123_456, sent_at_ms=now_ms,
                           received_at_ms=now_ms + 3, readings=sample)


def kafka_produce(settings: Settings, run_id: str, *, records: int, readings: int, devices: int) -> Ceiling:
    """Records/s and MB/s of a producer configured like ingest's, keyed by device like ingest does."""
    keys = [d.encode() for d in device_ids(ceiling_prefix(run_id), devices)]
    value = sample_record(keys[0].decode(), readings, int(time.time() * 1000)).model_dump_json().encode()
    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": f"bench-{run_id}",
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 200000,
    }, logger=_quiet)
    tally = {"ok": 0, "failed": 0, "last": 0.0}

    def delivered(err, _msg) -> None:
        tally["failed" if err is not None else "ok"] += 1
        tally["last"] = time.time()

    started = time.time()
    for i in range(records):
        while True:
            try:
                producer.produce(BENCH_TOPIC, value=value, key=keys[i % devices], on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(120)
    note = f"{tally['failed']:,} failed" if tally["failed"] else ""
    if left:
        note += f"{'; ' if note else ''}{left:,} undelivered after 120 s"
    return Ceiling(stage="Kafka produce",
                   measure=f"{readings}-reading records ({len(value)} B), acks=all",
                   count=tally["ok"], seconds=tally["last"] - started, unit="records",
                   payload_bytes=tally["ok"] * (len(value) + len(keys[0])), note=note)


# The stream worker's consumer waits up to this long for a fetch to fill (Faust hard-codes 1500 ms;
# streams.faust_fixes shortens it), and fetches at most this much per partition (Faust's
# consumer_max_fetch_size default).
FAUST_FETCH_MAX_WAIT_MS = HOT_PATH_FETCH_WAIT_MS
FAUST_FETCH_BYTES = 1024**2


def _faust_like_consumer(settings: Settings):
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                            fetch_max_wait_ms=FAUST_FETCH_MAX_WAIT_MS, max_partition_fetch_bytes=FAUST_FETCH_BYTES)


async def _consume_all(settings: Settings, expected: int) -> tuple[int, float]:
    from aiokafka import TopicPartition

    consumer = _faust_like_consumer(settings)
    await consumer.start()
    try:
        partitions = [TopicPartition(BENCH_TOPIC, p) for p in consumer.partitions_for_topic(BENCH_TOPIC) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        count, started, idle_since = 0, time.perf_counter(), time.perf_counter()
        while count < expected and time.perf_counter() - idle_since < 15:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            got = sum(len(records) for records in batches.values())
            if got:
                count += got
                idle_since = time.perf_counter()
        return count, idle_since - started
    finally:
        await consumer.stop()


def kafka_consume(settings: Settings, *, expected: int) -> Ceiling:
    """Records/s a consumer configured like Faust's reads back from the bench topic, from the start."""
    count, seconds = asyncio.run(_consume_all(settings, expected))
    return Ceiling(stage="Kafka consume", measure="aiokafka as Faust sets it up",
                   count=count, seconds=seconds, unit="records",
                   note="" if count >= expected else f"{expected - count:,} not read")


async def _round_trips(settings: Settings, samples: int, also_fetch: str | None) -> list[float]:
    from aiokafka import AIOKafkaProducer, TopicPartition

    consumer = _faust_like_consumer(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        partition = TopicPartition(BENCH_TOPIC, 0)
        assigned = [partition] + ([TopicPartition(also_fetch, 0)] if also_fetch else [])
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        waits = []
        for _ in range(samples):
            sent = time.perf_counter()
            await producer.send_and_wait(BENCH_TOPIC, b"ping", partition=0)
            while not (await consumer.getmany(partition, timeout_ms=5000)).get(partition):
                pass
            waits.append((time.perf_counter() - sent) * 1000)
            await asyncio.sleep(0.1)
        return waits
    finally:
        await producer.stop()
        await consumer.stop()


def kafka_round_trip(settings: Settings, *, with_empty_partition: bool, samples: int = 20) -> list[float]:
    """Milliseconds from producing one record (acks=all) to a Faust-like consumer having it, idle.

    The record goes to a partition that already holds data. With `with_empty_partition` the
    consumer also fetches a partition that has never held a record, as the stream worker does
    (vigil.deadletters, and changelog partitions of devices not yet seen): some brokers then hold
    the whole fetch for `fetch_max_wait_ms` instead of answering when data arrives.
    """
    if not with_empty_partition:
        return asyncio.run(_round_trips(settings, samples, None))
    admin = _admin(settings)
    future = admin.create_topics([NewTopic(EMPTY_TOPIC, num_partitions=1, replication_factor=1)])[EMPTY_TOPIC]
    try:
        future.result(15)
    except KafkaException as e:
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise
    try:
        return asyncio.run(_round_trips(settings, samples, EMPTY_TOPIC))
    finally:
        with contextlib.suppress(KafkaException):
            admin.delete_topics([EMPTY_TOPIC], operation_timeout=15)[EMPTY_TOPIC].result(20)


# -- PostgreSQL COPY -----------------------------------------------------------------------------

def synthetic_records(prefix: str, *, records: int, readings: int, devices: int, now_ms: int) -> list[dict]:
    return [sample_record(f"{prefix}-d{n % devices:04d}", readings, now_ms).model_dump() | {"seq": n // devices + 1}
            for n in range(records)]


async def _store_all(database_url: str, batches: Sequence[list[dict]]) -> tuple[int, float]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await sinks.prepare(conn)
        started = time.perf_counter()
        inserted = 0
        for batch in batches:
            inserted += (await sinks.store_records(conn, batch)).readings
        return inserted, time.perf_counter() - started


def delete_devices_rows(database_url: str, pattern: str,
                        tables: Sequence[str] = ("readings", "messages", "alerts", "dead_letters")) -> dict[str, int]:
    """Delete the rows of devices whose id is LIKE `pattern` from the tables that hold telemetry."""
    deleted = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in tables:
            statement = sql.SQL("DELETE FROM {} WHERE device_id LIKE %s").format(sql.Identifier(table))
            deleted[table] = conn.execute(statement, (pattern,)).rowcount
    return deleted


# The tables a run writes to and then empties again.
TELEMETRY_TABLES = ("readings", "messages", "device_liveness", "alerts", "dead_letters")


def vacuum_telemetry(database_url: str) -> None:
    """Reclaim what earlier runs deleted, so that every run writes to tables in the same state.

    A server with autovacuum off (this machine's is) otherwise keeps every deleted row of every run:
    7 million dead readings after a dozen runs, and each run a little slower than the last.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in TELEMETRY_TABLES:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


def copy_ceiling(settings: Settings, run_id: str, *, records: int, readings: int, devices: int) -> Ceiling:
    """Readings/s through the stream worker's writer, in batches of 5000 records, on one connection."""
    prefix = f"{ceiling_prefix(run_id)}-r{readings}"
    rows = synthetic_records(prefix, records=records, readings=readings, devices=devices,
                             now_ms=int(time.time() * 1000))
    batches = [rows[i:i + COPY_BATCH] for i in range(0, len(rows), COPY_BATCH)]
    try:
        inserted, seconds = asyncio.run(_store_all(settings.database_url, batches))
    finally:
        delete_devices_rows(settings.database_url, prefix + "-%", tables=("readings", "messages"))
    return Ceiling(stage="PostgreSQL COPY",
                   measure=f"store_records, {readings}-reading records, {COPY_BATCH:,}/batch",
                   count=inserted, seconds=seconds, unit="readings",
                   note=f"{records / seconds:,.0f} records/s" if seconds > 0 else "")


# -- CPU cores, in-process -----------------------------------------------------------------------

def validation_ceiling(*, messages: int, readings: int, devices: int) -> Ceiling:
    """Ingest's per-message work without I/O: judge the payload and serialise the Kafka record."""
    from ingest.validation import judge

    make = PayloadMaker(readings)
    now = time.time()
    ids = device_ids("bench-cpu", devices)
    items = [(f"devices/{ids[n % devices]}/telemetry", make(ids[n % devices], n, now)) for n in range(messages)]
    device = RegisteredDevice("bench-cpu", "bench-member", True)
    now_ms = int(now * 1000)
    started = time.perf_counter()
    for topic, payload in items:
        verdict = judge(topic, payload, now_ms=now_ms, retention_ms=30 * 86_400_000, lookup=lambda _d: device)
        verdict.record.model_dump_json().encode()
    seconds = time.perf_counter() - started
    return Ceiling(stage="ingest validation", measure=f"judge() + record JSON, {per_message(readings)}, in-process",
                   count=messages, seconds=seconds, unit="msg")


def rules_ceiling(*, messages: int, readings: int, devices: int) -> Ceiling:
    """The detect agent's loop body without Faust or Kafka: decode, group by device, judge, keep state."""
    from vigil.rules.catalog import DEFAULT_RULES
    from vigil.rules.lateness import judge_device
    from vigil.rules.state import DeviceState

    now_ms = int(time.time() * 1000)
    ids = device_ids("bench-cpu", devices)
    values = [sample_record(ids[n % devices], readings, now_ms + n).model_dump_json().encode()
              for n in range(messages)]
    table: dict[bytes, dict] = {}
    started = time.perf_counter()
    for start in range(0, len(values), DETECT_BATCH):
        by_device: dict[str, list] = defaultdict(list)
        members: dict[str, str] = {}
        for value in values[start:start + DETECT_BATCH]:
            record = json.loads(value)
            by_device[record["device_id"]].extend(record["readings"])
            members[record["device_id"]] = record["member_id"]
        for device_id, batch in by_device.items():
            key = device_id.encode()
            state = DeviceState.from_dict(table.get(key))
            judge_device(state, batch, rules=DEFAULT_RULES, device_id=device_id, member_id=members[device_id],
                         now_ms=now_ms)
            table[key] = state.to_dict()
    seconds = time.perf_counter() - started
    return Ceiling(stage="rule evaluation", measure=f"detect agent's body, {per_message(readings)}, in-process",
                   count=messages, seconds=seconds, unit="msg")
