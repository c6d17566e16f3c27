"""MQTT connections that publish simulated messages with QoS 1 and count the broker's answers."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from simulators.devices import Message
from simulators.provisioning import Link

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 10.0


class PublishError(RuntimeError):
    """The broker could not be reached or refused a connection's login."""


@dataclass(slots=True)
class Tally:
    """Broker answers across every connection; paho's network threads add to it."""

    acked: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, reason: ReasonCode) -> None:
        """Count one PUBACK; MQTT 5 reason codes of 0x80 and above are refusals."""
        with self.lock:
            if reason.is_failure:
                self.refused[str(reason)] += 1
            else:
                # "No matching subscribers" is a success: ingest may simply be down for a moment.
                self.acked += 1

    def snapshot(self) -> tuple[int, dict[str, int]]:
        """Acknowledged count and refusals by reason, read consistently while publishing goes on."""
        with self.lock:
            return self.acked, dict(self.refused)


class Connection:
    """One paho client logged in as a device or a gateway, with its own network thread."""

    def __init__(self, link: Link, tally: Tally, *, max_inflight: int) -> None:
        self.link = link
        self._tally = tally
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=link.client_id,
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.username_pw_set(link.username, link.password)
        self._client.max_inflight_messages_set(max_inflight)
        self._client.reconnect_delay_set(1, 10)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: object) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: object) -> None:
        if reason.is_failure:
            # paho reconnects by itself and resends what is still unacknowledged.
            log.warning("connection %s dropped: %s", self.link.client_id, reason)

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: object) -> None:
        self._tally.answer(reason)

    def start(self, host: str, port: int) -> None:
        """Connect and wait for the broker to accept the login."""
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as e:
            raise PublishError(f"cannot reach the MQTT broker at {host}:{port}: {e}") from e
        self._client.loop_start()
        if not self._connected.wait(_CONNECT_TIMEOUT_S):
            self.stop()
            raise PublishError(f"the MQTT broker at {host}:{port} did not answer {self.link.client_id}'s login")
        if self._refusal:
            self.stop()
            raise PublishError(f"the MQTT broker refused {self.link.client_id}'s login: {self._refusal}")

    def publish(self, message: Message) -> bool:
        """Queue one message; False when paho refuses it outright (never for a mere disconnection)."""
        info = self._client.publish(message.topic, message.encode(), qos=1)
        return info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)

    def stop(self) -> None:
        """Disconnect and end the network thread; paho drops whatever is still unacknowledged."""
        self._client.disconnect()
        self._client.loop_stop()


class Router:
    """Every connection of a fleet, and which one carries each device's messages."""

    def __init__(self, links: tuple[Link, ...], host: str, port: int, *, max_inflight: int = 100) -> None:
        self.tally = Tally()
        self._host, self._port = host, port
        self._connections = [Connection(link, self.tally, max_inflight=max_inflight) for link in links]
        self._by_device = {did: c for c in self._connections for did in c.link.device_ids}

    def __len__(self) -> int:
        return len(self._connections)

    def start(self) -> None:
        """Open every connection; on a failure, close those already open before raising."""
        started = []
        try:
            for connection in self._connections:
                connection.start(self._host, self._port)
                started.append(connection)
        except PublishError:
            for connection in started:
                connection.stop()
            raise

    def publish(self, message: Message) -> bool:
        """Queue `message` on the connection allowed to publish for its device."""
        return self._by_device[message.device_id].publish(message)

    def drain(self, expected: int, timeout_s: float) -> None:
        """Wait until the broker has answered `expected` messages, or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            acked, refused = self.tally.snapshot()
            if acked + sum(refused.values()) >= expected:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Close every connection."""
        for connection in self._connections:
            connection.stop()
