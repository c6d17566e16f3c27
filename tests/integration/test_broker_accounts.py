"""Broker accounts against a real Mosquitto started by `stack.mosquitto.up` in a temporary state folder."""
# The fixtures imported from mqtt_peers are found by pytest by name, so parameters reuse those names.
# ruff: noqa: F811

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from stack import mosquitto
from tests.integration.mqtt_peers import (  # noqa: F401
    BAD_CREDENTIALS,
    NOT_AUTHORIZED,
    WAIT_S,
    Peer,
    accounts,
    broker_secrets,
    ingest,
    peers,
    settings,
)
from vigil.broker_accounts import (
    INGEST_SUBSCRIPTION,
    INGEST_USERNAME,
    BrokerAccountError,
    can_log_in,
    telemetry_topic,
)
from vigil.broker_secrets import BrokerSecrets
from vigil.settings import Settings

pytestmark = pytest.mark.infra


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


def test_binding_a_large_gateway_again_drops_the_devices_no_longer_bound(accounts, peers):
    many = [f"hm-many-{n:04d}" for n in range(2_500)]  # several roles' worth
    username = accounts.ensure_gateway("home-4", many, "gw-pw")
    assert not peers(username, "gw-pw").publish(telemetry_topic(many[-1]), _payload(many[-1], 1)).is_failure

    accounts.ensure_gateway("home-4", [many[0], "hm-6"], "gw-pw-2")
    fewer = peers(username, "gw-pw-2")

    assert not fewer.publish(telemetry_topic(many[0]), _payload(many[0], 2)).is_failure
    assert not fewer.publish(telemetry_topic("hm-6"), _payload("hm-6", 1)).is_failure
    for device_id in (many[1], many[1_000], many[-1]):
        assert fewer.publish(telemetry_topic(device_id), _payload(device_id, 2)).value == NOT_AUTHORIZED

    accounts.ensure_gateway("home-4", many, "gw-pw-3")
    more = peers(username, "gw-pw-3")

    assert not more.publish(telemetry_topic(many[-1]), _payload(many[-1], 3)).is_failure
    assert more.publish(telemetry_topic("hm-6"), _payload("hm-6", 2)).value == NOT_AUTHORIZED


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

    assert all(can_log_in(settings.mqtt_host, settings.mqtt_port, d, f"pw-{d}", as_client_id=d)
               for d in device_ids[::13])


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


def test_a_payload_just_over_64_kib_reaches_ingest_to_be_dead_lettered(accounts, peers, ingest):
    accounts.ensure_device("wb-8", "pw-8")
    device = peers("wb-8", "pw-8")

    # The broker's limit leaves room for the topic and headers above the contract's 64 KiB payload.
    assert not device.publish(telemetry_topic("wb-8"), _payload("wb-8", 1, padding=64 * 1024)).is_failure

    assert len(ingest.receive().payload) > 64 * 1024


@pytest.fixture
def persistent_ingest(settings: Settings, broker_secrets: BrokerSecrets) -> Iterator[Callable[[], Peer]]:
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
