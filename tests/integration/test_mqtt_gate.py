"""The connection gate (`deploy/haproxy/haproxy.cfg`) on a real HAProxy in front of a real Mosquitto.

The gate holds what Mosquitto 2.0 cannot (issue 10): a deadline for CONNECT and a per-source
connection cap. Devices connect through it; ingest (a Peer) reads the broker directly, as Vigil's
services do on the compose network. Sources are told apart by loopback address: the device
connects from 127.0.0.1, the floods from other 127.x addresses.
"""
# The fixtures imported from mqtt_peers are found by pytest by name, so parameters reuse those names.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import re
import resource
import select
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.mqtt_peers import (  # noqa: F401
    Peer,
    accounts,
    broker_secrets,
    free_port,
    ingest,
    peers,
    settings,
)
from vigil.broker_accounts import telemetry_topic
from vigil.settings import Settings

pytestmark = [
    pytest.mark.infra,
    pytest.mark.skipif(shutil.which("haproxy") is None,
                       reason="haproxy is not installed (scripts/install-system-deps installs it)"),
]

HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"
PER_SOURCE = 50  # `sc0_conn_cur gt 50` in the cfg
CONNECT_DEADLINE_S = 5  # `tcp-request inspect-delay 5s`
MQTT_CONNECT = 0x10


def _payload(device_id: str, seq: int) -> str:
    return json.dumps({"device_id": device_id, "seq": seq, "sent_at": "2026-11-22T10:00:05Z",
                       "readings": [{"ts": "2026-11-22T10:00:00Z", "metric": "steps", "value": 0}]})


@pytest.fixture(scope="module")
def gate(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """HAProxy with the deploy cfg in front of the module's broker; yields Settings that point at the gate."""
    port, health_port = free_port(), free_port()
    env = {"PATH": os.environ["PATH"],
           "VIGIL_GATE_BIND": f"127.0.0.1:{port}",
           "VIGIL_GATE_HEALTH_BIND": f"127.0.0.1:{health_port}",
           "VIGIL_GATE_BROKER": f"{settings.mqtt_host}:{settings.mqtt_port}"}
    check = subprocess.run(["haproxy", "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    folder = tmp_path_factory.mktemp("gate")
    cfg, log = folder / "haproxy.cfg", folder / "haproxy.log"
    cfg.write_text(_fit_open_file_limit(HAPROXY_CFG.read_text()))
    with log.open("w") as out:
        proxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], env=env, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/health", timeout=1) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert proxy.poll() is None, f"haproxy exited: {log.read_text()}"
                assert time.monotonic() < deadline, f"haproxy did not come up: {log.read_text()}"
                time.sleep(0.1)
        yield Settings(VIGIL_MQTT_URL=f"mqtt://127.0.0.1:{port}", VIGIL_STATE_DIR=str(settings.state_dir))
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)


def _fit_open_file_limit(text: str) -> str:
    """The cfg as deployed, unless this machine's hard open-file limit is below what its maxconn needs.

    HAProxy refuses to start when it cannot raise its open-file limit to about 2 x maxconn (the
    container gets a ulimit for it in docker-compose.yml); a test needs far fewer connections.
    """
    maxconn = int(re.search(r"(?m)^    maxconn (\d+)$", text).group(1))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= 2 * maxconn + 100:
        return text
    return re.sub(r"(?m)^(\s+maxconn) \d+$", rf"\1 {(hard - 100) // 2}", text)


def _idle_socket(gate: Settings, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((gate.mqtt_host, gate.mqtt_port))
    return sock


def _closed(sock: socket.socket) -> bool:
    """True once the other end has closed (EOF or reset); call only when the socket is readable."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _closed_within(socks: list[socket.socket], timeout_s: float) -> set[socket.socket]:
    """The sockets the gate closes within `timeout_s` (nothing is ever sent back before CONNECT)."""
    closed: set[socket.socket] = set()
    deadline = time.monotonic() + timeout_s
    while len(closed) < len(socks) and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], left)
        closed |= {s for s in readable if _closed(s)}
    return closed


def _publish_through(gate: Settings, device_id: str, seq: int, ingest: Peer) -> None:
    device = Peer(gate, device_id, "pw")
    try:
        assert not device.connect().is_failure
        assert not device.publish(telemetry_topic(device_id), _payload(device_id, seq)).is_failure
    finally:
        device.close()
    message = ingest.receive()
    assert message.topic == telemetry_topic(device_id)
    assert json.loads(message.payload)["seq"] == seq


def test_a_device_connects_through_the_gate_and_ingest_receives(gate, accounts, ingest):
    accounts.ensure_device("gate-1", "pw")
    _publish_through(gate, "gate-1", 1, ingest)


def test_a_socket_that_sends_nothing_is_closed_after_the_connect_deadline(gate):
    sock = _idle_socket(gate, "127.0.0.3")
    started = time.monotonic()
    try:
        assert _closed_within([sock], CONNECT_DEADLINE_S + 3) == {sock}, "the gate held an idle socket"
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert CONNECT_DEADLINE_S - 0.5 <= elapsed <= CONNECT_DEADLINE_S + 1.5, elapsed


def test_a_socket_that_does_not_start_with_connect_is_closed_at_once(gate):
    sock = _idle_socket(gate, "127.0.0.4")
    try:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _closed_within([sock], 1) == {sock}, "a client that is not MQTT stayed connected"
    finally:
        sock.close()


def test_a_flood_from_one_source_is_cut_off_and_a_device_still_publishes(gate, accounts, ingest):
    accounts.ensure_device("gate-2", "pw")
    flood = [_idle_socket(gate, "127.0.0.2") for _ in range(PER_SOURCE + 20)]
    try:
        # The 20 over the cap are closed on arrival (which 20 depends on HAProxy's threads); the other
        # 50 are held until the deadline.
        refused = _closed_within(flood, 1.5)
        assert len(refused) == 20, f"{len(refused)} of {len(flood)} refused at once"
        # While the flood holds its 50, a device from elsewhere connects and its message arrives.
        _publish_through(gate, "gate-2", 1, ingest)
        held = [s for s in flood if s not in refused]
        assert _closed_within(held, CONNECT_DEADLINE_S + 2) == set(held), "the flood outlived the deadline"
    finally:
        for sock in flood:
            sock.close()
    # The source may connect again once its sockets are gone: the cap counts open connections.
    again = _idle_socket(gate, "127.0.0.2")
    try:
        assert not _closed_within([again], 1.0), "the cap still counted closed connections"
    finally:
        again.close()
