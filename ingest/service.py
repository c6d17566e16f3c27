"""The ingest process: MQTT shared subscription in, Kafka records out, broker ack only after Kafka's.

paho runs its network loop in a thread, which also takes librdkafka's acknowledgements as it goes;
a sweeper thread takes those that come while no message does. An MQTT message is acknowledged to
the broker when every Kafka record made from it (the telemetry record and its dead letters) has been
acknowledged by Kafka. Until then the broker keeps it, and with a persistent session it also keeps
what arrives while ingest is down.

No message can stop ingest: whatever its handling raises dead-letters that message as
`internal_error`. Should a thread die anyway, the process exits non-zero for its supervisor to
restart it, and heartbeats come only from probes that made it round the MQTT loop (`ingest/probe.py`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import psycopg
from confluent_kafka import Producer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_exponential

from ingest import metrics
from ingest.probe import LoopProbe
from ingest.validation import Verdict, failed, judge
from vigil.broker_accounts import INGEST_SUBSCRIPTION, INGEST_USERNAME, ingest_client_id
from vigil.settings import Settings
from vigil.storage.device_lookup import DeviceRegistry
from vigil.telemetry import RegisteredDevice, TelemetryRecord
from vigil.topics import DEAD_LETTERS, HEARTBEAT_INTERVAL_S, HEARTBEATS, TELEMETRY, ingest_probe_topic

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week of ingest downtime
RECEIVE_MAXIMUM = 1000  # in-flight messages the broker may push before our acks
# Worth waiting for: the database is away (a held message holds the broker too, by design).
# Anything else psycopg raises would fail the same way again, so it fails the message instead.
TRANSIENT_DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
# While messages arrive, the network thread serves Kafka's acknowledgements after each one: served
# there, they need no hand-over of the GIL between threads. The sweeper serves the rest this often.
DELIVERY_SWEEP_S = 0.02
# A record's JSON as bytes in one step (`model_dump_json` makes a str to be encoded again).
_RECORD_JSON = TelemetryRecord.__pydantic_serializer__.to_json


class _PendingAck:
    """Counts the Kafka acknowledgements one MQTT message still waits for."""

    __slots__ = ("generation", "mid", "remaining")

    def __init__(self, mid: int, generation: int, remaining: int) -> None:
        self.mid, self.generation, self.remaining = mid, generation, remaining


class IngestService:
    """Wires the MQTT client, the device registry and the Kafka producer together."""

    def __init__(self, settings: Settings, *, ingest_password: str) -> None:
        self._settings = settings
        self._password = ingest_password
        self._retention_ms = settings.retention_days * 86_400_000
        self._registry = DeviceRegistry(settings.database_url)
        self._generation = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._producer: Producer | None = None
        self._client: mqtt.Client | None = None
        self._poller: threading.Thread | None = None
        self._prober: threading.Thread | None = None
        self._probe = LoopProbe()
        self._probe_topic = ingest_probe_topic(settings.ingest_instance)
        self._component = f"ingest-{settings.ingest_instance}"
        self._started_ms = _now_ms()
        self.connected = threading.Event()

    def start(self) -> None:
        self._retrying_db(self._registry.start)
        self._producer = Producer({
            "bootstrap.servers": self._settings.kafka_bootstrap,
            "client.id": f"vigil-ingest-{self._settings.ingest_instance}",
            "acks": "all",
            # A produce request costs the broker (Tansu here) about as much as its records: at 1,600
            # msg/s, Tansu took 39 % of a core with a 5 ms linger and 18 % with 20 ms, and on a shared
            # machine that CPU is what delays alerts (publish -> alert p99 at half load 0.8-1.5 s with
            # 5 ms, 0.47 s with 20 ms). An idle message waits at most the 20 ms.
            "linger.ms": 20,
            "batch.num.messages": 10000,
            # Java-compatible hashing, so Faust (murmur2 too) puts table changelog keys on the same
            # partition as their records.
            "partitioner": "murmur2_random",
            # Never give up on a record: the MQTT message stays unacknowledged until Kafka has it.
            "message.timeout.ms": 0,
            "queue.buffering.max.messages": 200000,
        })
        self._poller = threading.Thread(target=self._poll_kafka, name="kafka-delivery", daemon=True)
        self._poller.start()
        self._prober = threading.Thread(target=self._send_probes, name="loop-probe", daemon=True)
        self._prober.start()
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=ingest_client_id(self._password, self._settings.ingest_instance),
                             protocol=mqtt.MQTTv5, manual_ack=True)
        client.username_pw_set(INGEST_USERNAME, self._password)
        client.max_inflight_messages_set(RECEIVE_MAXIMUM)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._client = client
        client.connect_async(self._settings.mqtt_host, self._settings.mqtt_port, keepalive=30,
                             clean_start=False, properties=props)
        client.loop_start()

    def stop(self) -> None:
        """Stop taking messages, then let Kafka confirm what it holds so those get acknowledged."""
        self._stop.set()
        if self._prober is not None:
            self._prober.join(5)
        if self._producer is not None:
            self._producer.flush(10)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self._registry.stop()

    # -- MQTT callbacks (paho's network thread) -------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused ingest: %s", reason_code)
            return
        with self._lock:
            # Acks owed on an older connection are void: the broker redelivers those messages.
            self._generation += 1
        client.subscribe(INGEST_SUBSCRIPTION, qos=1)
        # QoS 0: a probe is worth something only now; none is kept for a session that is away.
        client.subscribe(self._probe_topic, qos=0)
        self.connected.set()
        log.info("ingest connected to MQTT (session present: %s)", flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest lost the MQTT broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        # An exception leaving this callback would end paho's network thread, and with it ingest.
        try:
            topic = message.topic  # decoded from bytes on each access
            if topic == self._probe_topic:
                self._on_probe(message.payload)
            else:
                self._send(judge(topic, message.payload, now_ms=_now_ms(), retention_ms=self._retention_ms,
                                 lookup=self._lookup), message)
        except Exception as e:  # whatever it is, it is this message's failure, not ingest's
            self._on_failure(message, e)
        self._producer.poll(0)

    def _on_failure(self, message: mqtt.MQTTMessage, error: Exception) -> None:
        """Dead-letter the message as `internal_error` and acknowledge it once Kafka has that."""
        topic = _topic_of(message)
        log.error("ingest failed on a message on %s; dead-lettering it as internal_error", topic,
                  exc_info=error)
        try:
            self._send(failed(topic, message.payload, now_ms=_now_ms(), error=error), message)
        except Exception:
            # Only a broken producer gets here; the message stays unacknowledged, and is redelivered
            # after a reconnect, rather than lost.
            log.exception("could not dead-letter the failed message on %s; it stays unacknowledged", topic)

    def _send(self, verdict: Verdict, message: mqtt.MQTTMessage) -> None:
        """Put the verdict's records on Kafka; the message is acknowledged when Kafka has them all."""
        outgoing: list[tuple[str, bytes, bytes]] = []
        record, dead_letters = verdict.record, verdict.dead_letters
        if record is not None:
            outgoing.append((TELEMETRY, record.device_id.encode(), _RECORD_JSON(record)))
            metrics.ACCEPTED_MESSAGES.inc()
            metrics.ACCEPTED_READINGS.inc(len(record.readings))
            if dead_letters:
                metrics.REJECTED_READINGS.inc(len(dead_letters))
        else:
            metrics.REJECTED_MESSAGES.inc()
        for dead in dead_letters:
            metrics.DEAD_LETTERS.labels(dead.reason).inc()
            outgoing.append((DEAD_LETTERS, (dead.device_id or "").encode(), dead.model_dump_json().encode()))
        # The generation changes only in `_on_connect`, on this same network thread.
        pending = _PendingAck(message.mid, self._generation, len(outgoing))
        for topic, key, value in outgoing:
            self._produce(topic, key, value, pending, message.qos)

    def _lookup(self, device_id: str) -> RegisteredDevice | None:
        found = self._registry.cached(device_id)
        if found is not None:
            return found
        return self._retrying_db(lambda: self._registry.lookup(device_id))

    def _retrying_db(self, call: Callable[[], RegisteredDevice | None]) -> RegisteredDevice | None:
        # A database outage holds the message (and, through the in-flight limit, the broker)
        # instead of refusing a device that may well be registered.
        for attempt in Retrying(retry=retry_if_exception_type(TRANSIENT_DB_ERRORS),
                                wait=wait_exponential(multiplier=0.2, max=5),
                                before_sleep=before_sleep_log(log, logging.WARNING)):
            with attempt:
                return call()
        raise AssertionError("unreachable")

    # -- Kafka ---------------------------------------------------------------------------------

    def _produce(self, topic: str, key: bytes, value: bytes, pending: _PendingAck, qos: int) -> None:
        def delivered(err, _msg) -> None:
            if err is not None:
                log.error("Kafka refused a record for %s: %s; the MQTT message stays unacknowledged", topic, err)
                return
            with self._lock:
                pending.remaining -= 1
                ready = pending.remaining == 0 and pending.generation == self._generation
            if ready and self._client is not None:
                self._client.ack(pending.mid, qos)
                metrics.ACKNOWLEDGED.inc()

        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivered)
                return
            except BufferError:
                # librdkafka's queue is full (Kafka is slow or away): wait here, which in turn
                # stops us taking more from the broker.
                self._producer.poll(0.1)

    # -- liveness ------------------------------------------------------------------------------

    def _send_probes(self) -> None:
        """Every few seconds, a probe into the broker; its return through `_on_message` is the heartbeat."""
        while not self._stop.is_set():
            # Only while connected: an ingest cut off from the broker hears no device, and a heartbeat
            # would pass that silence off as the devices'.
            if self.connected.is_set():
                now_ms = _now_ms()
                with self._lock:
                    overdue = self._probe.outstanding_since_ms is not None and self._probe.due(now_ms)
                    payload = self._probe.next(now_ms) if self._probe.due(now_ms) else None
                    silent_ms = self._probe.silent_for_ms(now_ms, self._started_ms)
                if payload is not None:
                    if overdue:
                        log.warning("no loop probe has come back for %.0f s: the MQTT message loop is stuck or "
                                    "the broker is not delivering; no heartbeats until one does", silent_ms / 1000)
                    self._client.publish(self._probe_topic, payload, qos=0)
            self._stop.wait(HEARTBEAT_INTERVAL_S)

    def _on_probe(self, payload: bytes) -> None:
        """A probe came back through the message loop: tell the pipeline ingest is live."""
        now_ms = _now_ms()
        with self._lock:
            round_trip_ms = self._probe.returned(payload, now_ms)
        if round_trip_ms is None:
            log.warning("ignoring a message on %s that is not this process's probe", self._probe_topic)
            return
        metrics.PROBE_ROUND_TRIP.observe(round_trip_ms / 1000)
        metrics.PROBE_RETURNED.set(now_ms / 1000)
        body = {"component": self._component, "sent_at_ms": now_ms, "probe_round_trip_ms": round_trip_ms}
        try:
            self._producer.produce(HEARTBEATS, key=self._component.encode(), value=json.dumps(body).encode())
        except BufferError:
            log.debug("Kafka queue full; heartbeat skipped")

    def _poll_kafka(self) -> None:
        while not self._stop.wait(DELIVERY_SWEEP_S):
            self._producer.poll(0)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _topic_of(message: mqtt.MQTTMessage) -> str:
    # paho decodes the topic on each access; the broker checks it is UTF-8, but this path must not raise.
    try:
        return message.topic
    except UnicodeDecodeError:
        return "(a topic that is not UTF-8)"


def stop_when_a_thread_dies(stop: threading.Event) -> threading.Event:
    """From now on a thread ending in an exception sets `stop`, and the event returned.

    A dead network loop (or Kafka poller, or registry refresh) would leave a process that looks
    alive and does nothing, its unacknowledged messages held; exiting lets `vigil run` or the
    container runtime restart it.
    """
    died = threading.Event()

    def on_thread_death(args: threading.ExceptHookArgs) -> None:
        name = args.thread.name if args.thread is not None else "unknown"
        log.critical("ingest's %s thread died; exiting so that ingest is restarted", name,
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
        died.set()
        stop.set()

    threading.excepthook = on_thread_death
    return died


def run(settings: Settings, ingest_password: str, stop: threading.Event) -> int:
    """Run ingest until `stop` is set or one of its threads dies; the process's exit status."""
    from prometheus_client import start_http_server

    died = stop_when_a_thread_dies(stop)
    start_http_server(settings.ingest_metrics_port, addr="127.0.0.1")
    service = IngestService(settings, ingest_password=ingest_password)
    service.start()
    stop.wait()
    service.stop()
    return 1 if died.is_set() else 0
