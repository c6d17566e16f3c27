"""The broker's limits in both configurations, client-id binding rules and the log lines counted."""

from __future__ import annotations

import re
import resource
from pathlib import Path

import pytest

from stack import mosquitto
from vigil.broker_accounts import ingest_client_id, legacy_ingest_client_id, unbound_logins
from vigil.broker_log import drop_reason

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = {"local": ROOT / "stack" / "mosquitto.conf", "compose": ROOT / "deploy" / "mosquitto" / "mosquitto.conf"}
PAYLOAD_LIMIT = 64 * 1024  # docs/devices.md


def _options(path: Path) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            options.setdefault(name, []).append(value)
    return options


@pytest.mark.parametrize("where", sorted(CONFIGS))
def test_both_configurations_carry_the_limits(where: str) -> None:
    options = _options(CONFIGS[where])

    # The contract's payload plus room for the longest topic and the headers, and no more.
    assert PAYLOAD_LIMIT + 82 + 64 <= int(options["max_packet_size"][0]) <= PAYLOAD_LIMIT + 4096
    assert 0 < int(options["max_queued_bytes"][0]) <= 4 * 1024**3
    assert int(options["max_queued_messages"][0]) >= 100_000
    # The local value is filled in by `vigil stack up` (stack.mosquitto.max_connections).
    expected = "${max_connections}" if where == "local" else "10000"
    assert options["max_connections"] == [expected]
    assert "topic" in options["log_dest"], "the admin session counts refusals from $SYS/broker/log"
    assert options["allow_anonymous"] == ["false"]


def test_the_local_connection_limit_stays_under_the_open_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 4096))
    assert mosquitto.max_connections() == 1024 - 64
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1_048_576, 1_048_576))
    assert mosquitto.max_connections() == mosquitto.MAX_CONNECTIONS
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert mosquitto.max_connections() == mosquitto.MAX_CONNECTIONS


def test_ingests_client_id_is_stable_per_instance_and_unguessable_without_its_password() -> None:
    one = ingest_client_id("secret", "0")

    assert one == ingest_client_id("secret", "0")
    assert one != ingest_client_id("secret", "1")
    assert one != ingest_client_id("other", "0")
    assert re.fullmatch(r"vigil-ingest-0-[0-9a-f]{24}", one)
    assert one != legacy_ingest_client_id("0")


def test_only_vigils_device_and_gateway_logins_without_their_id_are_bound() -> None:
    clients = [
        {"username": "wb-1", "roles": [{"rolename": "device:wb-1"}]},
        {"username": "wb-2", "clientid": "wb-2", "roles": [{"rolename": "device:wb-2"}]},
        {"username": "wb-3", "clientid": "vigil-ingest-0", "roles": [{"rolename": "device:wb-3"}]},
        {"username": "gw.home", "roles": [{"rolename": "gateway:home"}]},
        {"username": "vigil-ingest", "roles": [{"rolename": "vigil-ingest"}]},
        {"username": "vigil-admin", "roles": [{"rolename": "admin"}]},
        {"username": "operator", "roles": [{"rolename": "operators"}]},
    ]

    assert unbound_logins(clients) == ["wb-1", "wb-3", "gw.home"]


@pytest.mark.parametrize(("line", "reason"), [
    ("1796134194: Client d2 disconnected due to oversize packet.", "oversize_packet"),
    ("2026-11-22T10:00:00: Client <unknown> disconnected, not authorised.", "not_authorised"),
    ("1796134141: Client <unknown> has exceeded timeout, disconnecting.", "connect_timeout"),
    ("1796134141: Client wb-1 has exceeded timeout, disconnecting.", "keepalive_timeout"),
    ("1796134141: Client connection from 10.0.0.7 denied: max_connections exceeded.", "max_connections"),
    ("1796134141: Client wb-1 disconnected due to malformed packet.", "malformed_packet"),
    ("1796134194: New client connected from 127.0.0.1:48555 as d2 (p5, c1, k60, u'd2').", None),
    ("1796134194: Client d2 disconnected.", None),
])
def test_broker_log_lines_are_read_for_their_drop_reason(line: str, reason: str | None) -> None:
    assert drop_reason(line) == reason
