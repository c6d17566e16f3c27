"""Broker accounts against a real Mosquitto started by `stack.mosquitto.up` in a temporary state folder."""

from __future__ import annotations

import json
import queue
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from stack import mosquitto
from vigil.broker_accounts import (
    INGEST_SUBSCRIPTION,
    INGEST_USERNAME,
    BrokerAccountError,
    BrokerAccounts,
    can_log_in,
    telemetry_topic,
)
from vigil.settings import Settings

pytestmark = pytest.mark.infra

WAIT_S = 10
NOT_AUTHORIZED = 0x87
BAD_CREDENTIALS = 0x86


class Peer:
    """A test MQTT v5 client that records what the broker answers, so tests wait on events, not sleeps."""

    def __init__(self, settings: Settings, username: str, password: str, *, client_id: str = "",
                 clean_start: bool = True, session_expiry_s: int = 0) -> None:
        self._settings = settings
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"test-{secrets.token_hex(4)}",
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(VIGIL_MQTT_URL=f"mqtt://127.0.0.1:{_free_port()}",
                        VIGIL_STATE_DIR=str(tmp_path_factory.mktemp("state")))
    assert mosquitto.up(settings) == "started"
    yield settings
    assert mosquitto.down(settings)


@pytest.fixture(scope="module")
def broker_secrets(settings: Settings) -> mosquitto.BrokerSecrets:
    return mosquitto.ensure_secrets(settings)


@pytest.fixture
def accounts(settings: Settings, broker_secrets: mosquitto.BrokerSecrets) -> Iterator[BrokerAccounts]:
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
def ingest(peers: Callable[..., Peer], broker_secrets: mosquitto.BrokerSecrets) -> Peer:
    peer = peers(INGEST_USERNAME, broker_secrets.ingest_password)
    assert peer.subscribe(INGEST_SUBSCRIPTION).value == 1  # granted QoS 1
    return peer


def _payload(device_id: str, seq: int, padding: int = 0) -> str:
    return json.dumps({"device_id": device_id, "seq": seq, "sent_at": "2026-11-22T10:00:05Z",
                       "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", "value": 0}],
                       "padding": "x" * padding})


def test_a_device_publishes_to_its_topic_and_ingest_receives_it(accounts, peers, ingest):
    accounts.ensure_device("wb-1", "pw-1")
    device = peers("wb-1", "pw-1")

    assert not device.publish(telemetry_topic("wb-1"), _payload("wb-1", 1)).is_failure

    message = ingest.receive()
    assert (message.topic, json.loads(message.payload)["seq"]) == ("devices/wb-1/telemetry", 1)


def test_a_device_may_not_publish_for_another_device(accounts, peers, ingest):
    accounts.ensure_device("wb-2", "pw-2")
    accounts.ensure_device("wb-3", "pw-3")
    device = peers("wb-2", "pw-2")

    assert device.publish(telemetry_topic("wb-3"), _payload("wb-3", 1)).value == NOT_AUTHORIZED
    assert not device.publish(telemetry_topic("wb-2"), _payload("wb-2", 2)).is_failure

    # The broker handles one client's messages in order: the refused one would have come first.
    assert ingest.receive().topic == "devices/wb-2/telemetry"
    assert ingest.messages.empty()


def test_a_device_may_not_subscribe(accounts, peers):
    accounts.ensure_device("wb-4", "pw-4")
    device = peers("wb-4", "pw-4")

    assert device.subscribe("devices/+/telemetry").value == NOT_AUTHORIZED
    assert device.subscribe(INGEST_SUBSCRIPTION).value == NOT_AUTHORIZED


def test_a_wrong_password_is_refused_at_connect(accounts, settings):
    accounts.ensure_device("wb-5", "right")
    intruder = Peer(settings, "wb-5", "wrong")
    try:
        assert intruder.connect().value in (NOT_AUTHORIZED, BAD_CREDENTIALS)
    finally:
        intruder.close()


def test_registering_a_device_again_replaces_its_password(accounts, settings, peers):
    accounts.ensure_device("wb-6", "first")
    accounts.ensure_device("wb-6", "second")

    old = Peer(settings, "wb-6", "first")
    try:
        assert old.connect().is_failure
    finally:
        old.close()
    peers("wb-6", "second")


def test_a_gateway_publishes_only_for_its_bound_devices(accounts, peers, ingest):
    username = accounts.ensure_gateway("home-1", ["hm-1", "hm-2"], "gw-pw")
    gateway = peers(username, "gw-pw")

    assert not gateway.publish(telemetry_topic("hm-1"), _payload("hm-1", 1)).is_failure
    assert not gateway.publish(telemetry_topic("hm-2"), _payload("hm-2", 1)).is_failure
    assert gateway.publish(telemetry_topic("hm-3"), _payload("hm-3", 1)).value == NOT_AUTHORIZED

    assert {ingest.receive().topic, ingest.receive().topic} == {"devices/hm-1/telemetry",
                                                                "devices/hm-2/telemetry"}


def test_binding_a_gateway_again_replaces_its_devices(accounts, peers):
    username = accounts.ensure_gateway("home-2", ["hm-4"], "gw-pw")
    assert accounts.ensure_gateway("home-2", ["hm-5"], "gw-pw-2") == username
    gateway = peers(username, "gw-pw-2")

    assert not gateway.publish(telemetry_topic("hm-5"), _payload("hm-5", 1)).is_failure
    assert gateway.publish(telemetry_topic("hm-4"), _payload("hm-4", 1)).value == NOT_AUTHORIZED


def test_a_disabled_device_is_disconnected_and_cannot_connect_until_enabled(accounts, settings, peers):
    accounts.ensure_device("wb-7", "pw-7")
    device = peers("wb-7", "pw-7")

    accounts.disable("wb-7")

    assert device.disconnected.wait(WAIT_S)
    refused = Peer(settings, "wb-7", "pw-7")
    try:
        assert refused.connect().is_failure
    finally:
        refused.close()
    accounts.enable("wb-7")
    peers("wb-7", "pw-7")


def test_unknown_accounts_and_service_names_are_errors(accounts):
    with pytest.raises(BrokerAccountError, match="Client not found"):
        accounts.disable("no-such-device")
    with pytest.raises(ValueError):
        accounts.ensure_device(INGEST_USERNAME, "takeover")
    with pytest.raises(ValueError):
        accounts.ensure_gateway("home-3", ["devices/+"], "pw")


def test_one_client_serves_many_threads_at_once(accounts, settings):
    device_ids = [f"th-{n}" for n in range(40)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(lambda d: accounts.ensure_device(d, f"pw-{d}"), device_ids)) == device_ids

    assert all(can_log_in(settings.mqtt_host, settings.mqtt_port, d, f"pw-{d}") for d in device_ids[::13])


def test_the_ingest_password_can_be_changed(accounts, settings, broker_secrets):
    accounts.ensure_ingest_account("changed")
    try:
        assert can_log_in(settings.mqtt_host, settings.mqtt_port, INGEST_USERNAME, "changed")
        assert not can_log_in(settings.mqtt_host, settings.mqtt_port, INGEST_USERNAME,
                              broker_secrets.ingest_password)
    finally:
        accounts.ensure_ingest_account(broker_secrets.ingest_password)


def test_up_again_reuses_the_broker_without_disturbing_ingest(settings, ingest):
    assert mosquitto.up(settings) == "reused"

    assert mosquitto.status(settings)["state"] == "up"
    # A SUBACK on the same connection comes after any disconnect the broker sent before it.
    assert ingest.subscribe(INGEST_SUBSCRIPTION).value == 1
    assert not ingest.disconnected.is_set()


def test_a_payload_over_64_kib_reaches_ingest(accounts, peers, ingest):
    accounts.ensure_device("wb-8", "pw-8")
    device = peers("wb-8", "pw-8")

    assert not device.publish(telemetry_topic("wb-8"), _payload("wb-8", 1, padding=200 * 1024)).is_failure

    assert len(ingest.receive().payload) > 200 * 1024


@pytest.fixture
def persistent_ingest(settings: Settings, broker_secrets: mosquitto.BrokerSecrets) -> Iterator[Callable[[], Peer]]:
    """An ingest with a fixed client id and a long session; the session is discarded afterwards.

    A left-over session would stay in the shared group and take its turn of later messages.
    """
    client_id = f"ingest-persistent-{secrets.token_hex(3)}"
    made: list[Peer] = []

    def make() -> Peer:
        peer = Peer(settings, INGEST_USERNAME, broker_secrets.ingest_password, client_id=client_id,
                    clean_start=False, session_expiry_s=24 * 3600)
        made.append(peer)
        assert not peer.connect().is_failure
        return peer

    yield make
    for peer in made:
        peer.close()
    cleanup = Peer(settings, INGEST_USERNAME, broker_secrets.ingest_password, client_id=client_id)
    cleanup.connect()
    cleanup.close()


def _publish_while_ingest_is_away(accounts, peers, persistent_ingest, device_id: str) -> list[int]:
    ingest = persistent_ingest()
    assert not ingest.session_present
    assert ingest.subscribe(INGEST_SUBSCRIPTION).value == 1
    ingest.close()
    accounts.ensure_device(device_id, "pw")
    device = peers(device_id, "pw")
    sent = list(range(1, 6))
    for seq in sent:
        assert not device.publish(telemetry_topic(device_id), _payload(device_id, seq)).is_failure
    device.close()
    return sent


def test_a_persistent_ingest_session_gets_what_was_published_while_it_was_away(
        accounts, peers, persistent_ingest):
    sent = _publish_while_ingest_is_away(accounts, peers, persistent_ingest, "wb-9")

    ingest = persistent_ingest()

    assert ingest.session_present
    assert [json.loads(ingest.receive().payload)["seq"] for _ in sent] == sent


def test_queued_messages_survive_a_broker_restart(settings, accounts, peers, persistent_ingest):
    sent = _publish_while_ingest_is_away(accounts, peers, persistent_ingest, "wb-10")
    accounts.close()

    assert mosquitto.down(settings)
    assert mosquitto.status(settings)["state"] == "down"
    assert mosquitto.up(settings) == "started"
    ingest = persistent_ingest()

    assert ingest.session_present
    assert [json.loads(ingest.receive().payload)["seq"] for _ in sent] == sent
