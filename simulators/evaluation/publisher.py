"""A device's own MQTT v5 connection that publishes at QoS 1 and waits for each PUBACK, noting when it came."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from simulators.publishing import PublishError

_CONNECT_TIMEOUT_S = 10.0
_NO_MATCHING_SUBSCRIBERS = 16


@dataclass(frozen=True, slots=True)
class Ack:
    """The broker's answer to one publish: when (epoch seconds) and whether it took the message."""

    at: float
    accepted: bool
    reason: str
    # The broker took it but nobody was subscribed: ingest had not subscribed yet, the message is lost.
    unrouted: bool = False


class AckingPublisher:
    """Publishes one message at a time, so each acknowledgement time belongs to exactly one message."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self._host, self._port = host, port
        # The broker binds each login to one client id, its username.
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=username,
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._connected = threading.Event()
        self._refusal: str | None = None
        # paho calls on_publish holding its own lock, so nothing here holds ours across a publish call.
        self._answered = threading.Condition()
        self._acks: dict[int, Ack] = {}
        self._abandoned: set[int] = set()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: object) -> None:
        if reason.is_failure:
            self._refusal = str(reason)
        self._connected.set()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: object) -> None:
        ack = Ack(time.time(), not reason.is_failure, str(reason), reason.value == _NO_MATCHING_SUBSCRIBERS)
        with self._answered:
            if mid in self._abandoned:
                self._abandoned.discard(mid)
            else:
                self._acks[mid] = ack
                self._answered.notify_all()

    def __enter__(self) -> AckingPublisher:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as e:
            raise PublishError(f"cannot reach the MQTT broker at {self._host}:{self._port}: {e}") from e
        self._client.loop_start()
        if not self._connected.wait(_CONNECT_TIMEOUT_S) or self._refusal:
            self.__exit__()
            raise PublishError(f"the MQTT broker did not accept the login: {self._refusal or 'no answer'}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, timeout_s: float = 15.0) -> Ack | None:
        """Publish and wait for the PUBACK; None when none came within `timeout_s`."""
        mid = self._client.publish(topic, payload, qos=1).mid
        with self._answered:
            if self._answered.wait_for(lambda: mid in self._acks, timeout_s):
                return self._acks.pop(mid)
            self._abandoned.add(mid)
            return None
