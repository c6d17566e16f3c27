"""Issue 10 against a real Mosquitto: client ids bound to logins, no session takeover, broker limits."""
# The fixtures imported from mqtt_peers are found by pytest by name, so parameters reuse those names.
# ruff: noqa: F811

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from api.provisioning import BROKER_TIMEOUT_S
from stack import mosquitto
from tests.integration.mqtt_peers import (  # noqa: F401
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
    ingest_client_id,
    legacy_ingest_client_id,
    telemetry_topic,
)
from vigil.broker_secrets import ensure_secrets
from vigil.settings import Settings

pytestmark = pytest.mark.infra

PACKET_TOO_LARGE = 0x95


def _payload(device_id: str, seq: int, padding: int = 0) -> str:
    return json.dumps({"device_id": device_id, "seq": seq, "sent_at": "2026-11-22T10:00:05Z",
                       "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", "value": 0}],
                       "padding": "x" * padding})


def _refused(settings: Settings, username: str, password: str, client_id: str) -> bool:
    peer = Peer(settings, username, password, client_id=client_id)
    try:
        return peer.connect().value == NOT_AUTHORIZED
    finally:
        peer.close()


def _drops(reason: str) -> float:
    return REGISTRY.get_sample_value("vigil_broker_drops_total", {"reason": reason}) or 0.0


def _wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_device_cannot_take_over_ingests_session(accounts, peers, settings, broker_secrets):
    accounts.ensure_device("hx-1", "pw")
    ingest_id = ingest_client_id(broker_secrets.ingest_password, "0")
    live_ingest = peers(INGEST_USERNAME, broker_secrets.ingest_password, client_id=ingest_id)
    assert live_ingest.subscribe(INGEST_SUBSCRIPTION).value == 1

    assert _refused(settings, "hx-1", "pw", ingest_id)
    assert _refused(settings, "hx-1", "pw", legacy_ingest_client_id("0"))

    # The refused CONNECT never reached the session: a SUBACK on it comes after any takeover.
    assert live_ingest.subscribe(INGEST_SUBSCRIPTION).value == 1
    assert not live_ingest.disconnected.is_set()


def test_a_device_cannot_kick_another_device_off(accounts, peers, settings, ingest):
    accounts.ensure_device("hx-2", "pw-2")
    accounts.ensure_device("hx-3", "pw-3")
    victim = peers("hx-3", "pw-3")

    assert _refused(settings, "hx-2", "pw-2", "hx-3")

    assert not victim.publish(telemetry_topic("hx-3"), _payload("hx-3", 1)).is_failure
    assert not victim.disconnected.is_set()
    assert ingest.receive().topic == telemetry_topic("hx-3")


def test_a_gateway_is_bound_to_its_own_client_id(accounts, peers, settings, ingest):
    username = accounts.ensure_gateway("hx-gw", ["hx-4"], "gw-pw")

    assert _refused(settings, username, "gw-pw", "anything-else")
    gateway = peers(username, "gw-pw")  # its own id, the default

    assert not gateway.publish(telemetry_topic("hx-4"), _payload("hx-4", 1)).is_failure
    assert ingest.receive().topic == telemetry_topic("hx-4")


def test_one_login_holds_one_connection(accounts, peers):
    accounts.ensure_device("hx-5", "pw")
    first = peers("hx-5", "pw")

    peers("hx-5", "pw")

    assert first.disconnected.wait(WAIT_S)


def test_a_gateway_with_thousands_of_devices_registers_in_time_and_fits_the_packet_limit(accounts, peers, ingest):
    # The longest ids there are: the fewest ACLs fit one control message.
    device_ids = [f"hx-many-{n:05d}-{'x' * 50}" for n in range(5_000)]
    gateway_id = f"hx-big-{'g' * 57}"
    assert {len(d) for d in [*device_ids, gateway_id]} == {64}

    started = time.monotonic()
    username = accounts.ensure_gateway(gateway_id, device_ids, "pw")
    # What the API waits for; one change command per ACL took 18 s here, and minutes on a full broker.
    assert time.monotonic() - started < BROKER_TIMEOUT_S
    gateway = peers(username, "pw")

    for device_id in (device_ids[0], device_ids[1_234], device_ids[-1]):
        assert not gateway.publish(telemetry_topic(device_id), _payload(device_id, 1)).is_failure
    assert {ingest.receive().topic for _ in range(3)} == {
        telemetry_topic(d) for d in (device_ids[0], device_ids[1_234], device_ids[-1])}
    assert gateway.publish(telemetry_topic("hx-not-bound"), _payload("hx-not-bound", 1)).value == NOT_AUTHORIZED


def test_a_2_mib_payload_is_refused_and_counted(accounts, peers, ingest, settings):
    accounts.ensure_device("hx-6", "pw")
    device = peers("hx-6", "pw")
    before = _drops("oversize_packet")

    device.client.publish(telemetry_topic("hx-6"), _payload("hx-6", 1, padding=2 * 1024 * 1024), qos=1)

    assert device.disconnected.wait(WAIT_S)
    assert _wait_for(lambda: _drops("oversize_packet") == before + 1)
    log = (settings.state_dir / "mosquitto" / "mosquitto.log").read_text()
    assert "Client hx-6 disconnected due to oversize packet." in log
    # Nothing of it reached ingest; the device's next message, on a new connection, does.
    after = peers("hx-6", "pw")
    assert not after.publish(telemetry_topic("hx-6"), _payload("hx-6", 2)).is_failure
    assert json.loads(ingest.receive().payload)["seq"] == 2


def test_a_packet_a_few_kib_over_the_contract_is_refused(accounts, peers):
    accounts.ensure_device("hx-11", "pw")
    device = peers("hx-11", "pw")

    device.client.publish(telemetry_topic("hx-11"), _payload("hx-11", 1, padding=70 * 1024), qos=1)

    assert device.disconnected.wait(WAIT_S)


def test_a_refused_login_is_counted(accounts, settings):
    accounts.ensure_device("hx-7", "pw")
    before = _drops("not_authorised")

    assert _refused(settings, "hx-7", "pw", "not-its-id")

    assert _wait_for(lambda: _drops("not_authorised") >= before + 1)


@pytest.mark.skipif(not shutil.which("mosquitto_ctrl"), reason="mosquitto_ctrl is not installed")
def test_logins_made_before_binding_are_bound_once(accounts, settings, broker_secrets):
    def ctrl(*args: str) -> None:
        # The outside tool, as the accounts were made before: no client id.
        subprocess.run(["mosquitto_ctrl", "-h", settings.mqtt_host, "-p", str(settings.mqtt_port),
                        "-u", "vigil-admin", "-P", broker_secrets.admin_password, "dynsec", *args],
                       check=True, capture_output=True, timeout=WAIT_S)

    for username, rolename in (("hx-old", "device:hx-old"), ("gw.hx-old", "gateway:hx-old"),
                               ("operator", "operators")):
        ctrl("createRole", rolename)
        ctrl("createClient", username, "-p", "pw")
        ctrl("addClientRole", username, rolename)
    assert not _refused(settings, "hx-old", "pw", "whatever")

    accounts.ensure_default_deny()  # what `vigil stack up` and `vigil migrate` run

    assert _refused(settings, "hx-old", "pw", "whatever")
    assert _refused(settings, "gw.hx-old", "pw", "whatever")
    assert not _refused(settings, "hx-old", "pw", "hx-old")
    assert not _refused(settings, "operator", "pw", "whatever")  # not Vigil's: left alone
    assert accounts.bind_client_ids() == []


@pytest.mark.skipif(not shutil.which("mosquitto_ctrl"), reason="mosquitto_ctrl is not installed")
def test_only_roles_that_need_it_receive_messages(accounts, peers, ingest, settings):
    """A role allowed to subscribe but not to receive gets nothing: receiving is denied by default."""
    accounts.ensure_device("hx-8", "pw")
    subprocess.run(["mosquitto_ctrl", "-h", settings.mqtt_host, "-p", str(settings.mqtt_port), "-u", "vigil-admin",
                    "-P", ensure_secrets(settings).admin_password, "dynsec", "addRoleACL", "device:hx-8",
                    "subscribePattern", "devices/+/telemetry", "allow"], check=True, capture_output=True,
                   timeout=WAIT_S)
    snoop = peers("hx-8", "pw")
    assert snoop.subscribe("devices/+/telemetry").value == 1
    accounts.ensure_device("hx-9", "pw")
    device = peers("hx-9", "pw")

    assert not device.publish(telemetry_topic("hx-9"), _payload("hx-9", 1)).is_failure

    assert ingest.receive().topic == telemetry_topic("hx-9")
    with pytest.raises(queue.Empty):
        snoop.messages.get(timeout=1)


def test_ingests_old_fixed_id_session_is_emptied_into_the_group(accounts, peers, settings, broker_secrets):
    old = Peer(settings, INGEST_USERNAME, broker_secrets.ingest_password, client_id=legacy_ingest_client_id("0"),
               clean_start=False, session_expiry_s=24 * 3600)
    assert not old.connect().is_failure
    assert old.subscribe(INGEST_SUBSCRIPTION).value == 1
    old.close()  # an ingest of the previous version, stopped for the upgrade
    accounts.ensure_device("hx-10", "pw")
    device = peers("hx-10", "pw")
    for seq in range(1, 6):
        assert not device.publish(telemetry_topic("hx-10"), _payload("hx-10", seq)).is_failure
    new = peers(INGEST_USERNAME, broker_secrets.ingest_password,
                client_id=ingest_client_id(broker_secrets.ingest_password, "0"))
    assert new.subscribe(INGEST_SUBSCRIPTION).value == 1

    assert accounts.empty_legacy_ingest_session(broker_secrets.ingest_password, "0") == 5

    assert sorted(json.loads(new.receive().payload)["seq"] for _ in range(5)) == [1, 2, 3, 4, 5]
    # The old session is gone: it takes no share of what comes next.
    assert not device.publish(telemetry_topic("hx-10"), _payload("hx-10", 6)).is_failure
    assert json.loads(new.receive().payload)["seq"] == 6
    assert accounts.empty_legacy_ingest_session(broker_secrets.ingest_password, "0") == 0


def test_the_local_broker_gets_its_limits(settings):
    conf = (settings.state_dir / "mosquitto" / "mosquitto.conf").read_text()

    assert f"max_connections {mosquitto.max_connections()}" in conf.splitlines()
    assert "max_packet_size 66560" in conf.splitlines()
