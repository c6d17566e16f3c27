"""`python -m bench.ingest_cost`: the CPU ingest itself spends per message and per reading, under load.

A real `python -m ingest` runs against the stack's Mosquitto and Kafka, and nothing else of Vigil's:
gateways publish single-reading and 10-reading messages as fast as the broker takes them, and
ingest's CPU time (user plus system, every thread, from /proc) is read from just before the first
publish until ingest has acknowledged every message to the broker, which it does for each only once
Kafka has its record. CPU time rather than wall time: on a small machine the publishers, the
brokers and ingest compete for the cores, which moves wall time much more than CPU time.

Its devices and gateway logins are its own (ids `bench-ic-<run>-*`); the gateways are disabled and
the devices deleted again at the end. With `--profile` py-spy samples ingest during the loaded runs.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import httpx
import orjson
import psycopg
import typer
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

from bench.load import Login, Publishers, PublishJob, share, split
from bench.procfs import TICKS_PER_S, alive, cpu_ticks
from stack import manager
from stack.process import StackError, port_open
from vigil.broker_accounts import ADMIN_USERNAME, BrokerAccounts
from vigil.broker_secrets import ensure_secrets
from vigil.logs import configure_logging
from vigil.settings import Settings, get_settings
from vigil.topics import TELEMETRY

# Wide enough for the table also when the output goes to a file.
console = Console(width=max(shutil.get_terminal_size().columns, 110))
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30
# Ingest has acknowledged nothing more for this long: it is stuck, and the run is void.
STALL_S = 60
# Ingest's own background work (Kafka polls, probes, registry refreshes) is sampled this long.
IDLE_S = 5.0
WARM_UP_MESSAGES = 500
READ_BACK_IDLE_S = 15
_ACKNOWLEDGED = "vigil_ingest_acknowledged_messages"
_DEAD_LETTERS = "vigil_ingest_dead_letters"
_quiet = logging.getLogger("bench.librdkafka")
_quiet.setLevel(logging.CRITICAL)


class CostError(RuntimeError):
    """Ingest could not be started or measured; the message says what happened."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """One loaded run: what ingest spent, and what it would have spent idle for as long."""

    readings: int
    messages: int
    cpu_s: float
    idle_cpu_s: float
    wall_s: float
    records: int
    distinct: int
    dead_letters: int
    threads: dict[str, float]

    @property
    def ms_per_message(self) -> float:
        return 1000 * self.cpu_s / self.messages

    @property
    def us_per_reading(self) -> float:
        return 1_000_000 * self.cpu_s / (self.messages * self.readings)

    @property
    def busy_ms_per_message(self) -> float:
        """Per message, less what ingest spends idle: the cost that grows with the load."""
        return 1000 * max(0.0, self.cpu_s - self.idle_cpu_s) / self.messages


class KafkaTelemetry:
    """Reads back what a run put on the telemetry topic, to check that every message got there once."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-ingest-cost",
                                   "enable.auto.commit": False}, logger=_quiet)

    def ends(self) -> list[TopicPartition]:
        """Each partition at its high watermark: where a run that starts now begins reading."""
        partitions = self._consumer.list_topics(TELEMETRY, timeout=10).topics[TELEMETRY].partitions
        return [TopicPartition(TELEMETRY, p, self._consumer.get_watermark_offsets(TopicPartition(TELEMETRY, p),
                                                                                  timeout=10)[1])
                for p in partitions]

    def count(self, starts: list[TopicPartition], prefix: str, seqs: range, expected: int) -> tuple[int, int]:
        """(records, distinct messages) of the prefix's devices with a seq in `seqs`, from `starts` on.

        Tansu's high watermarks can trail the records it has acknowledged by a few, so a run reads
        from where the topic ended before it began and picks its own records out.
        """
        self._consumer.assign(starts)
        records, seen = 0, set()
        idle_since = time.monotonic()
        while len(seen) < expected and time.monotonic() - idle_since < READ_BACK_IDLE_S:
            batch = self._consumer.consume(10_000, timeout=0.5)
            if batch:
                idle_since = time.monotonic()
            for message in batch:
                if message.error() or not (message.key() or b"").startswith(f"{prefix}-".encode()):
                    continue
                record = orjson.loads(message.value())
                if record["seq"] in seqs:
                    records += 1
                    seen.add((record["device_id"], record["seq"]))
        self._consumer.unassign()
        return records, len(seen)

    def close(self) -> None:
        self._consumer.close()


class Ingest:
    """`python -m ingest` as a child process, its /metrics, and its CPU."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._metrics_url = f"http://127.0.0.1:{settings.ingest_metrics_port}/metrics"
        self.log_path = settings.state_dir / "logs" / "ingest-cost.log"
        self._process: subprocess.Popen | None = None
        self.pid = 0

    def start(self) -> None:
        port = self._settings.ingest_metrics_port
        if port_open("127.0.0.1", port):
            raise CostError(f"something already listens on VIGIL_INGEST_METRICS_PORT={port}: an ingest seems to "
                            "run, and it would take part of the load; stop it first")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen([sys.executable, "-m", "ingest"], stdout=log, stderr=subprocess.STDOUT)
        self.pid = self._process.pid

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it: ingest lets Kafka confirm what it holds, then exits."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def counter(self, name: str) -> int | None:
        """A counter of ingest's /metrics, all its labels summed; None while /metrics does not answer."""
        self.check_alive()
        try:
            text = httpx.get(self._metrics_url, timeout=5).text
        except httpx.TransportError:
            return None
        return int(sum(sample.value for family in text_string_to_metric_families(text) if family.name == name
                       for sample in family.samples if sample.name == f"{name}_total"))

    def check_alive(self) -> None:
        if not alive(self.pid):
            raise CostError(f"ingest exited; see {self.log_path}")

    def cpu_s(self) -> float:
        ticks = cpu_ticks(self.pid)
        if ticks is None:
            raise CostError("ingest exited while it was measured")
        return ticks / TICKS_PER_S

    def wait_acknowledged(self, target: int, what: str) -> None:
        """Until ingest has acknowledged `target` messages in all, or has been stuck for `STALL_S`."""
        seen, since = -1, time.monotonic()
        while True:
            count = self.counter(_ACKNOWLEDGED)
            if count is not None and count >= target:
                return
            if count != seen:
                seen, since = count, time.monotonic()
            elif time.monotonic() - since > STALL_S:
                raise CostError(f"ingest acknowledged {seen} of {target} messages ({what}) and then nothing for "
                                f"{STALL_S} s")
            time.sleep(0.1)


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks of each of a process's threads, as `name (tid)`.

    librdkafka names its threads `rdk:*`; Python's are all `python`, told apart by the thread ids
    that py-spy shows too. (`/proc/<tid>/stat` would give the whole process's: the thread's own
    figures are under `task/`.)
    """
    ticks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rpartition(")")[2].split()
            ticks[f"{name} ({task.name})"] = int(fields[11]) + int(fields[12])
    return ticks


def provision(settings: Settings, prefix: str, *, devices: int, connections: int) -> list[Login]:
    """One member with `devices` home devices in the registry, and gateway logins that publish for them."""
    ids = [f"{prefix}-d{n:04d}" for n in range(devices)]
    member_id = f"{prefix}-m"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO members (id, name, policy, consent) VALUES (%s, %s, %s, %s)",
                     (member_id, "Bench Member", Jsonb({"number": prefix.upper(), "line": "home"}),
                      Jsonb({"monitoring": True, "outreach": False, "auto_claims": False})))
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO devices (device_id, kind, member_id, report_interval_s, mqtt_username) "
                               "VALUES (%s, 'home', %s, 86400, %s)", [(d, member_id, d) for d in ids])
    logins = []
    with BrokerAccounts(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME,
                        ensure_secrets(settings).admin_password) as accounts:
        for n, group in enumerate(split(ids, connections), start=1):
            password = secrets.token_urlsafe(24)
            username = accounts.ensure_gateway(f"{prefix}-gw{n}", group, password)
            logins.append(Login(client_id=username, username=username, password=password, device_ids=group))
    return logins


def unprovision(settings: Settings, prefix: str, logins: Sequence[Login]) -> None:
    """Disable the run's gateway logins and delete its devices and member."""
    with BrokerAccounts(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME,
                        ensure_secrets(settings).admin_password) as accounts:
        for login in logins:
            accounts.disable(login.username)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM devices WHERE device_id LIKE %s", (f"{prefix}-%",))
        conn.execute("DELETE FROM members WHERE id = %s", (f"{prefix}-m",))


def _jobs(settings: Settings, logins: Sequence[Login], *, readings: int, messages: int, first_seq: int,
          rate_per_s: float | None) -> list[PublishJob]:
    per_login = rate_per_s / len(logins) if rate_per_s else None
    return [PublishJob(host=settings.mqtt_host, port=settings.mqtt_port, login=login, readings=readings,
                       first_seq=first_seq, messages=count, rate_per_s=per_login)
            for login, count in zip(logins, share(messages, len(logins)), strict=True)]


def publish(settings: Settings, logins: Sequence[Login], *, readings: int, messages: int, first_seq: int,
            rate_per_s: float | None = None, on_start=lambda: None) -> int:
    """Publish at `rate_per_s`, or as fast as the broker takes them; the number the broker acknowledged."""
    publishers = Publishers(_jobs(settings, logins, readings=readings, messages=messages, first_seq=first_seq,
                                  rate_per_s=rate_per_s))
    try:
        publishers.start()
        on_start()
        publishers.go()
        results = publishers.results(timeout_s=messages / 100 + 300)
    finally:
        publishers.stop()
    refused = sum(r.refused for r in results)
    if refused:
        raise CostError(f"the broker refused {refused} of the bench's messages")
    return sum(r.acked for r in results)


def measure(settings: Settings, ingest: Ingest, kafka: KafkaTelemetry, logins: Sequence[Login], prefix: str, *,
            readings: int, messages: int, first_seq: int, rate_per_s: float | None) -> Cost:
    """One loaded run, from just before the first publish until ingest acknowledged the last message."""
    idle_before = ingest.cpu_s()
    time.sleep(IDLE_S)
    idle_rate = (ingest.cpu_s() - idle_before) / IDLE_S
    starts = kafka.ends()
    start: dict[str, float] = {}
    threads_before: dict[str, int] = {}

    def on_start() -> None:
        start.update(acked=ingest.counter(_ACKNOWLEDGED) or 0, refused=ingest.counter(_DEAD_LETTERS) or 0,
                     cpu=ingest.cpu_s(), wall=time.monotonic())
        threads_before.update(thread_ticks(ingest.pid))

    published = publish(settings, logins, readings=readings, messages=messages, first_seq=first_seq,
                        rate_per_s=rate_per_s, on_start=on_start)
    ingest.wait_acknowledged(int(start["acked"]) + published, f"{readings}-reading run")
    cpu_s, wall_s = ingest.cpu_s() - start["cpu"], time.monotonic() - start["wall"]
    threads = {name: (used - threads_before.get(name, 0)) / TICKS_PER_S
               for name, used in thread_ticks(ingest.pid).items()}
    refused = (ingest.counter(_DEAD_LETTERS) or 0) - int(start["refused"])
    records, distinct = kafka.count(starts, prefix, range(first_seq, first_seq + messages), published)
    return Cost(readings=readings, messages=published, cpu_s=cpu_s, idle_cpu_s=idle_rate * wall_s, wall_s=wall_s,
                records=records, distinct=distinct, dead_letters=refused,
                threads={name: used for name, used in threads.items() if used > 0})


@contextlib.contextmanager
def profiling(pid: int, path: Path | None) -> Iterator[None]:
    """py-spy sampling `pid` into `path` (collapsed stacks) meanwhile; nothing without a path."""
    if path is None:
        yield
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise CostError("--profile needs py-spy (pip install py-spy)")
    recorder = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--gil",
                                 "--threads", "--output", str(path)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()


def render(costs: Sequence[Cost]) -> None:
    table = Table("readings", "messages", "CPU s", "ms/msg", "µs/reading", "less idle", "wall s", "msg/s",
                  "on Kafka", "refused", title="ingest's CPU under load (less idle: ms/msg less its idle rate)")
    for c in costs:
        table.add_row(str(c.readings), f"{c.messages:,}", f"{c.cpu_s:.2f}", f"{c.ms_per_message:.3f}",
                      f"{c.us_per_reading:.1f}", f"{c.busy_ms_per_message:.3f}", f"{c.wall_s:.1f}",
                      f"{c.messages / c.wall_s:,.0f}", f"{c.distinct:,}" + (f" ({c.records:,})" if c.records !=
                                                                              c.distinct else ""),
                      f"{c.dead_letters:,}")
    console.print(table)


def ingest_cost(
    single: Annotated[int, typer.Option(help="Single-reading messages per run.", min=100)] = 20_000,
    multi: Annotated[int, typer.Option(help="10-reading messages per run.", min=100)] = 10_000,
    devices: Annotated[int, typer.Option(help="Home devices the messages are spread over.", min=1)] = 40,
    connections: Annotated[int, typer.Option(help="Publishing gateway connections, one process each.",
                                             min=1, max=64)] = 4,
    rate: Annotated[float, typer.Option(help="Messages per second over all publishers; 0 for as fast as the "
                                         "broker takes them.", min=0)] = 0,
    repeat: Annotated[int, typer.Option(help="Runs of each size, one after the other.", min=1)] = 1,
    by_thread: Annotated[bool, typer.Option("--by-thread", help="Also show each thread's share of ingest's CPU.")
                         ] = False,
    profile: Annotated[Path | None, typer.Option(help="Write py-spy's collapsed stacks of the loaded runs here.",
                                                 dir_okay=False)] = None,
) -> None:
    """Start the stack and one ingest, load it with 1- and 10-reading messages, print its CPU per message."""
    settings = get_settings()
    configure_logging("WARNING")
    try:
        manager.up(settings)
    except StackError as e:
        console.print(f"[red]stack up failed:[/red] {e}")
        raise typer.Exit(1) from e
    prefix = f"bench-ic-{secrets.token_hex(3)}"
    logins = provision(settings, prefix, devices=devices, connections=min(connections, devices))
    ingest = Ingest(settings)
    kafka = KafkaTelemetry(settings)
    costs: list[Cost] = []
    try:
        ingest.start()
        console.print(f"ingest runs as pid {ingest.pid}; warming up with {WARM_UP_MESSAGES} messages")
        deadline = time.monotonic() + START_TIMEOUT_S
        while (before := ingest.counter(_ACKNOWLEDGED)) is None:
            if time.monotonic() > deadline:
                raise CostError(f"ingest's /metrics did not answer within {START_TIMEOUT_S} s")
            time.sleep(0.2)
        published = publish(settings, logins, readings=1, messages=WARM_UP_MESSAGES, first_seq=0)
        ingest.wait_acknowledged(before + published, "warm-up")
        seq = WARM_UP_MESSAGES
        with profiling(ingest.pid, profile):
            for _ in range(repeat):
                for readings, messages in ((1, single), (10, multi)):
                    costs.append(measure(settings, ingest, kafka, logins, prefix, readings=readings,
                                         messages=messages, first_seq=seq, rate_per_s=rate or None))
                    seq += messages
                    c = costs[-1]
                    console.print(f"  {readings:>2} reading(s): {c.messages:,} messages, {c.ms_per_message:.3f} "
                                  f"ms/msg, {c.us_per_reading:.1f} µs/reading")
                    if by_thread:
                        console.print("     by thread: " + ", ".join(
                            f"{name} {100 * used / c.cpu_s:.0f}%" for name, used in
                            sorted(c.threads.items(), key=lambda t: -t[1])))
    except CostError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    finally:
        ingest.stop()
        kafka.close()
        unprovision(settings, prefix, logins)
    render(costs)
    if any(c.distinct < c.messages or c.dead_letters for c in costs):
        console.print("[red]some acknowledged messages are not on the telemetry topic, or ingest refused some: "
                      "the figures above are not of the intended load[/red]")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(ingest_cost)
