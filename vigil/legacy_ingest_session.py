"""Emptying the persistent session ingest kept under its old, fixed client id (`vigil-ingest-<n>`).

Ingest's client id is now derived from its password, so after an upgrade the old session stays
behind in the broker: still a member of ingest's shared group, it would go on taking its share of
telemetry, queued for a client that never returns. Before that happens the session is left for
good: it leaves the group, each message it holds is published again on its own topic (to the
current group) and only then acknowledged, and the session ends. A failure part-way keeps the
session, with what it still holds, for the next attempt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

KEEP_S = 7 * 24 * 3600  # as long as ingest keeps its session, so a failed attempt loses nothing
IDLE_S = 2.0  # no message for this long after leaving the group: the session holds nothing more


class LegacySessionError(RuntimeError):
    """The old session could not be emptied; it keeps what it still holds."""


def _client(client_id: str, username: str, password: str, **options: object) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         reconnect_on_failure=False, **options)
    client.username_pw_set(username, password)
    return client


class LegacySession:
    """One old ingest session, opened as ingest; `forward` empties it through a publishing login."""

    def __init__(self, host: str, port: int, username: str, password: str, client_id: str, *,
                 timeout_s: float = 10.0) -> None:
        self._address = (host, port)
        self._timeout_s = timeout_s
        self.client_id = client_id
        self._client = _client(client_id, username, password, manual_ack=True)
        self._messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connack: queue.Queue[tuple[bool, bool]] = queue.Queue()
        self._left_group = threading.Event()
        self._client.on_connect = lambda _c, _u, flags, rc, _p: self._connack.put(
            (not rc.is_failure, flags.session_present))
        self._client.on_message = lambda _c, _u, message: self._messages.put(message)
        self._client.on_unsubscribe = lambda *_args: self._left_group.set()

    def open(self) -> bool:
        """Resume the session; False (and closed) when the broker holds none under this id."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = KEEP_S
        try:
            self._client.connect(*self._address, keepalive=30, clean_start=False, properties=props)
        except OSError as e:
            raise LegacySessionError(f"cannot reach the broker: {e}") from e
        self._client.loop_start()
        try:
            accepted, present = self._connack.get(timeout=self._timeout_s)
        except queue.Empty:
            accepted, present = False, False
        if not accepted:
            self._client.loop_stop()
            raise LegacySessionError(f"the broker did not let ingest resume {self.client_id}")
        if not present:
            self.close(end=True)
        return present

    def forward(self, group_filter: str, publisher_client_id: str, username: str, password: str) -> int:
        """Leave the group, publish each held message again and acknowledge it; returns how many."""
        publisher = _client(publisher_client_id, username, password)
        try:
            publisher.connect(*self._address, keepalive=30)
        except OSError as e:
            raise LegacySessionError(f"cannot reach the broker: {e}") from e
        publisher.loop_start()
        forwarded = 0
        try:
            self._client.unsubscribe(group_filter)
            if not self._left_group.wait(self._timeout_s):
                raise LegacySessionError(f"the broker did not take {self.client_id} out of the group")
            deadline = time.monotonic() + IDLE_S
            while time.monotonic() < deadline:
                try:
                    message = self._messages.get(timeout=IDLE_S / 4)
                except queue.Empty:
                    continue
                info = publisher.publish(message.topic, message.payload, qos=1)
                info.wait_for_publish(self._timeout_s)
                if not info.is_published():
                    raise LegacySessionError(f"the broker did not take a message for {message.topic} again")
                self._client.ack(message.mid, message.qos)
                forwarded += 1
                deadline = time.monotonic() + IDLE_S
        finally:
            publisher.disconnect()
            publisher.loop_stop()
        self.close(end=True)
        return forwarded

    def close(self, *, end: bool = False) -> None:
        """Disconnect; with `end`, the broker discards the session (everything in it was handled)."""
        props = Properties(PacketTypes.DISCONNECT)
        if end:
            props.SessionExpiryInterval = 0
        self._client.disconnect(properties=props if end else None)
        self._client.loop_stop()
