"""`vigil stack` against the real daemons: each test starts its own on private loopback ports.

The state folder lives under the repository, not pytest's tmp_path: as root, the project's
PostgreSQL runs as the `postgres` user, who cannot traverse /tmp/pytest-of-root (mode 0700).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from stack import kafka, manager, postgres
from stack.process import StackError, port_open, wait_until
from vigil.settings import Settings
from vigil.topics import topic_specs

pytestmark = pytest.mark.infra

STATE_ROOT = Path(__file__).resolve().parents[2] / ".vigil-test-stack"


def _free_ports(count: int) -> list[int]:
    """Distinct ports in the 29xxx range nothing on loopback uses, so parallel runs rarely collide."""
    found: list[int] = []
    for port in random.sample(range(29000, 30000), 1000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("not enough free ports in 29000-29999")


def _own_global_address() -> str | None:
    """This machine's own non-loopback IPv4 address: a connection to it never leaves the host."""
    try:
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    addresses = [line.split()[3].split("/")[0] for line in out.splitlines() if len(line.split()) > 3]
    return addresses[0] if addresses else None


@pytest.fixture
def state_dir() -> Iterator[Path]:
    folder = STATE_ROOT / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if STATE_ROOT.exists() and not any(STATE_ROOT.iterdir()):
            STATE_ROOT.rmdir()


def _settings(state_dir: Path, **overrides: str) -> Settings:
    db_port, kafka_port, mqtt_port = _free_ports(3)
    env = {
        "VIGIL_STATE_DIR": str(state_dir),
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{db_port}/vigil_owned",
        "VIGIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "VIGIL_MQTT_URL": f"mqtt://127.0.0.1:{mqtt_port}",
        "VIGIL_TELEMETRY_PARTITIONS": "3",
    }
    return Settings(**(env | overrides))


def _db_port(settings: Settings) -> int:
    return int(settings.database_url.rsplit(":", 1)[1].split("/")[0])


def _kafka_port(settings: Settings) -> int:
    return int(settings.kafka_bootstrap.rsplit(":", 1)[1])


def test_postgres_up_creates_an_owned_cluster_with_the_schema_and_down_stops_it(state_dir: Path):
    settings = _settings(state_dir)
    assert not port_open("127.0.0.1", _db_port(settings))
    try:
        assert postgres.up(settings) == "started"

        with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            assert {"messages", "readings", "alerts"} <= tables
            assert conn.execute("SELECT count(*) FROM readings_1m").fetchone() == (0,)
        assert (state_dir / "postgres" / "data" / "PG_VERSION").exists()

        assert postgres.up(settings) == "reused"
        state, detail = postgres.status(settings)
        assert state == "up"
        assert "owned by vigil" in detail
    finally:
        stopped = postgres.down(settings)
    assert stopped
    assert wait_until(lambda: not port_open("127.0.0.1", _db_port(settings)), 10)
    assert postgres.status(settings)[0] == "down"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the postgres user")
def test_as_root_a_state_folder_the_postgres_user_cannot_reach_is_an_error_saying_so(state_dir: Path):
    locked = state_dir / "locked"
    locked.mkdir(mode=0o700)
    settings = _settings(locked / "state")

    with pytest.raises(StackError, match="initdb") as raised:
        postgres.up(settings)

    assert "VIGIL_STATE_DIR" in str(raised.value)
    assert not port_open("127.0.0.1", _db_port(settings))


def test_kafka_up_starts_tansu_with_every_topic_and_its_partitions(state_dir: Path):
    settings = _settings(state_dir)
    assert not port_open("127.0.0.1", _kafka_port(settings))
    try:
        assert kafka.up(settings) == "started"

        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        topics = admin.list_topics(timeout=10).topics
        partitions = {spec.name: len(topics[spec.name].partitions) for spec in topic_specs(settings)
                      if spec.name in topics}
        assert partitions == {spec.name: spec.partitions for spec in topic_specs(settings)}

        assert kafka.up(settings) == "reused"
        assert kafka.status(settings)[0] == "up"
    finally:
        stopped = kafka.down(settings)
    assert stopped
    assert wait_until(lambda: not port_open("127.0.0.1", _kafka_port(settings)), 10)
    assert kafka.status(settings)[0] == "down"


def test_manager_up_is_idempotent_and_down_stops_what_it_owns(state_dir: Path):
    settings = _settings(state_dir)
    reported: list[tuple[str, str]] = []
    try:
        first = manager.up(settings, report=lambda name, state: reported.append((name, state)))
        assert first == {"postgresql": "started", "kafka": "started", "mqtt": "started"}
        assert reported == list(first.items())

        assert manager.up(settings) == {"postgresql": "reused", "kafka": "reused", "mqtt": "reused"}
        assert {name: state for name, (state, _detail) in manager.status(settings).items()} == {
            "postgresql": "up", "kafka": "up", "mqtt": "up"}
    finally:
        stopped = manager.down(settings)
    assert stopped == {"mqtt": True, "kafka": True, "postgresql": True}
    assert {name: state for name, (state, _detail) in manager.status(settings).items()} == {
        "postgresql": "down", "kafka": "down", "mqtt": "down"}
    assert manager.down(settings) == {"mqtt": False, "kafka": False, "postgresql": False}


def test_a_silent_database_off_loopback_is_an_error_naming_database_url(state_dir: Path):
    # The host's own interface address: off loopback as far as Vigil can tell, yet the refused
    # connection never leaves the machine (a TEST-NET address would send packets to the router).
    address = _own_global_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    settings = _settings(state_dir, DATABASE_URL=f"postgresql://postgres@{address}:{_free_ports(1)[0]}/vigil_owned")

    with pytest.raises(StackError, match="DATABASE_URL") as raised:
        postgres.up(settings)

    assert "loopback" in str(raised.value)
    assert not (state_dir / "postgres").exists()
