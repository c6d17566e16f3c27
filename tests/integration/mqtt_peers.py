"""A test MQTT v5 client, and fixtures for a real Mosquitto started by `stack.mosquitto.up`.

Test modules that use them import the fixtures by name (pytest finds them in the module).
"""

from __future__ import annotations

import queue
import secrets
import socket
import threading
from collections.abc import Callable, Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from stack import mosquitto
from vigil.broker_accounts import INGEST_SUBSCRIPTION, INGEST_USERNAME, BrokerAccounts, client_id
from vigil.broker_secrets import BrokerSecrets, ensure_secrets
from vigil.settings import Settings

WAIT_S = 10
NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86


class Peer:
    """A test MQTT v5 client that records what the broker answers, so tests wait on events, not sleeps."""

    def __init__(self, settings: Settings, username: str, password: str, *, client_id: str = "",
                 clean_start: bool = True, session_expiry_s: int = 0) -> None:
        """`client_id` defaults to the login's own (the only one a device or gateway may use)."""
        self._settings = settings
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or _own_client_id(username),
                                  reconnect_on_failure=False)
        self.client.username_pw_set(username, password)
        self.session_present = False
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.disconnected = threading.Event()
        self._connacks: queue.Queue[tuple[ReasonCode, bool]] = queue.Queue()
        self._acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client.on_connect = lambda _c, _u, flags, rc, _p: self._connacks.put((rc, flags.session_present))
        self.client.on_disconnect = lambda *_args: self.disconnected.set()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self._acked(mid, rc)
        self.client.on_subscribe = lambda _c, _u, mid, rcs, _p: self._acked(mid, rcs[0])

    def _acked(self, mid: int, reason_code: ReasonCode) -> None:
        with self._cond:
            self._acks[mid] = reason_code
            self._cond.notify_all()

    def _wait_ack(self, mid: int) -> ReasonCode:
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self._acks, WAIT_S), f"no ack for message {mid}"
            return self._acks.pop(mid)

    def connect(self) -> ReasonCode:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._session_expiry_s
        self.client.connect(self._settings.mqtt_host, self._settings.mqtt_port, keepalive=30,
                            clean_start=self._clean_start, properties=properties)
        self.client.loop_start()
        reason_code, self.session_present = self._connacks.get(timeout=WAIT_S)
        return reason_code

    def publish(self, topic: str, payload: bytes | str) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        return self._wait_ack(self.client.publish(topic, payload, qos=1).mid)

    def subscribe(self, topic_filter: str) -> ReasonCode:
        _, mid = self.client.subscribe(topic_filter, qos=1)
        return self._wait_ack(mid)

    def receive(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _own_client_id(username: str) -> str:
    # Ingest's login is not bound; each test ingest gets its own id, as each instance does.
    return f"test-ingest-{secrets.token_hex(4)}" if username == INGEST_USERNAME else client_id(username)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(VIGIL_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
                        VIGIL_STATE_DIR=str(tmp_path_factory.mktemp("state")))
    assert mosquitto.up(settings) == "started"
    yield settings
    assert mosquitto.down(settings)


@pytest.fixture(scope="module")
def broker_secrets(settings: Settings) -> BrokerSecrets:
    return ensure_secrets(settings)


@pytest.fixture
def accounts(settings: Settings, broker_secrets: BrokerSecrets) -> Iterator[BrokerAccounts]:
    with BrokerAccounts(settings.mqtt_host, settings.mqtt_port, "vigil-admin",
                        broker_secrets.admin_password) as accounts:
        yield accounts


@pytest.fixture
def peers(settings: Settings) -> Iterator[Callable[..., Peer]]:
    """Makes connected peers (asserting the broker accepted them) and closes them after the test."""
    made: list[Peer] = []

    def make(username: str, password: str, **options) -> Peer:
        peer = Peer(settings, username, password, **options)
        made.append(peer)
        reason_code = peer.connect()
        assert not reason_code.is_failure, f"{username} was refused: {reason_code}"
        return peer

    yield make
    for peer in made:
        peer.close()


@pytest.fixture
def ingest(peers: Callable[..., Peer], broker_secrets: BrokerSecrets) -> Peer:
    peer = peers(INGEST_USERNAME, broker_secrets.ingest_password)
    assert peer.subscribe(INGEST_SUBSCRIPTION).value == 1  # granted QoS 1
    return peer
