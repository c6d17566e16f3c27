"""The ingest process: MQTT shared subscription in, Kafka records out, broker ack only after Kafka's.

paho runs its network loop in a thread; librdkafka delivers acknowledgements on a poll thread.
An MQTT message is acknowledged to the broker when every Kafka record made from it (the telemetry
record and its dead letters) has been acknowledged by Kafka. Until then the broker keeps it, and
with a persistent session it also keeps what arrives while ingest is down.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import paho.mqtt.client as mqtt
import psycopg
from confluent_kafka import Producer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_exponential

from ingest import metrics
from ingest.validation import judge
from vigil.broker_accounts import INGEST_SUBSCRIPTION, INGEST_USERNAME
from vigil.settings import Settings
from vigil.storage.registry import DeviceRegistry
from vigil.telemetry import RegisteredDevice
from vigil.topics import DEAD_LETTERS, HEARTBEAT_INTERVAL_S, HEARTBEATS, TELEMETRY

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our queue for a week of ingest downtime
RECEIVE_MAXIMUM = 1000  # in-flight messages the broker may push before our acks


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
        self._heartbeat: threading.Thread | None = None
        self.connected = threading.Event()

    def start(self) -> None:
        self._retrying_db(self._registry.start)
        self._producer = Producer({
            "bootstrap.servers": self._settings.kafka_bootstrap,
            "client.id": f"vigil-ingest-{self._settings.ingest_instance}",
            "acks": "all",
            "linger.ms": 5,
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
        self._heartbeat = threading.Thread(target=self._send_heartbeats, name="heartbeat", daemon=True)
        self._heartbeat.start()
        client = mqtt.Client(CallbackAPIVersion.VERSION2,
                             client_id=f"vigil-ingest-{self._settings.ingest_instance}",
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
        if self._heartbeat is not None:
            self._heartbeat.join(5)
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
        self.connected.set()
        log.info("ingest connected to MQTT (session present: %s)", flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest lost the MQTT broker (%s); reconnecting", reason_code)

    def _on_message(self, client: mqtt.Client, userdata, message: mqtt.MQTTMessage) -> None:
        verdict = judge(message.topic, message.payload, now_ms=int(time.time() * 1000),
                        retention_ms=self._retention_ms, lookup=self._lookup)
        outgoing: list[tuple[str, bytes, bytes]] = []
        if verdict.record is not None:
            record = verdict.record
            outgoing.append((TELEMETRY, record.device_id.encode(), record.model_dump_json().encode()))
            metrics.MESSAGES.labels("accepted").inc()
            metrics.READINGS.labels("accepted").inc(len(record.readings))
            if verdict.dead_letters:
                metrics.READINGS.labels("rejected").inc(len(verdict.dead_letters))
        else:
            metrics.MESSAGES.labels("rejected").inc()
        for dead in verdict.dead_letters:
            metrics.DEAD_LETTERS.labels(dead.reason).inc()
            outgoing.append((DEAD_LETTERS, (dead.device_id or "").encode(), dead.model_dump_json().encode()))
        with self._lock:
            pending = _PendingAck(message.mid, self._generation, len(outgoing))
        for topic, key, value in outgoing:
            self._produce(topic, key, value, pending, message.qos)

    def _lookup(self, device_id: str) -> RegisteredDevice | None:
        found = self._registry.cached(device_id)
        if found is not None:
            return found
        return self._retrying_db(lambda: self._registry.lookup(device_id))

    def _retrying_db(self, call):
        # A database outage holds the message (and, through the in-flight limit, the broker)
        # instead of refusing a device that may well be registered.
        for attempt in Retrying(retry=retry_if_exception_type(psycopg.Error),
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

        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
                return
            except BufferError:
                # librdkafka's queue is full (Kafka is slow or away): wait here, which in turn
                # stops us taking more from the broker.
                self._producer.poll(0.1)

    def _send_heartbeats(self) -> None:
        """Every few seconds, a heartbeat through Kafka to the stream worker: the pipeline is live."""
        component = f"ingest-{self._settings.ingest_instance}"
        while not self._stop.is_set():
            # Only while connected to MQTT: an ingest cut off from the broker hears no device, and
            # its heartbeat would pass that silence off as the devices'.
            if self.connected.is_set():
                body = {"component": component, "sent_at_ms": int(time.time() * 1000)}
                try:
                    self._producer.produce(HEARTBEATS, key=component.encode(), value=json.dumps(body).encode())
                except BufferError:
                    log.debug("Kafka queue full; heartbeat skipped")
            self._stop.wait(HEARTBEAT_INTERVAL_S)

    def _poll_kafka(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)


def run(settings: Settings, ingest_password: str, stop: threading.Event) -> None:
    """Run ingest until `stop` is set."""
    from prometheus_client import start_http_server

    start_http_server(settings.ingest_metrics_port, addr="127.0.0.1")
    service = IngestService(settings, ingest_password=ingest_password)
    service.start()
    stop.wait()
    service.stop()
