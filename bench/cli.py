"""`vigil bench`: stack up, each stage's ceiling, then Vigil's services end to end; figures as tables.

Not a test: it prints what this machine does and whether that meets the aims. The load generator
runs on the same machine as everything it measures, so on a small machine they compete for CPU.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.status import Status

from bench import ceilings
from bench.bare_faust import bare_faust
from bench.end_to_end import BenchError, Fleet, Pipeline, first_seq, new_run_id
from bench.procfs import CpuMeter, cpu_count, memory_kb
from bench.report import (
    BenchReport,
    Memory,
    StageLatency,
    Throughput,
    cpu_notes,
    per_message,
    render,
    summarize_latency,
)
from bench.soak import SoakMinute, soak
from vigil.logs import configure_logging
from vigil.settings import ConfigError, Settings, get_settings

console = Console()
# Without a terminal (CI, a log file) a phase says how it goes at most this often.
PROGRESS_EVERY_S = 10.0


class _Lines:
    """A status that writes lines instead of redrawing a spinner: a long phase is never silent in a log."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def update(self, text: str) -> None:
        if time.monotonic() - self._last >= PROGRESS_EVERY_S:
            self._last = time.monotonic()
            console.print(f"  … {text}")


@contextmanager
def _phase(text: str) -> Iterator[Status | _Lines]:
    """A spinner on a terminal; elsewhere a line as the phase starts and one with its time as it ends."""
    if console.is_terminal:
        with console.status(text) as status:
            yield status
        return
    started = time.monotonic()
    console.print(f"→ {text}")
    yield _Lines()
    console.print(f"  done in {time.monotonic() - started:.1f} s")

_FULL = {"messages": 60_000, "devices": 400, "leaks": 40, "load_seconds": 30.0}
_QUICK = {"messages": 5_000, "devices": 40, "leaks": 10, "load_seconds": 10.0}
# Kafka takes many more records per second than the other stages: give it enough to time.
_KAFKA_FACTOR = 5
_CPU_CORE_MESSAGES = 20_000
# Records the bare Faust agent reads: enough to time it (about 10 s here) without lengthening the run much.
_BARE_FAUST_RECORDS = 120_000


def _pid_file(path: Path) -> list[int]:
    from stack.process import read_pid

    pid = read_pid(path)
    return [pid] if pid else []


def _broker_pids(settings: Settings) -> dict[str, Path]:
    return {"mosquitto": (settings.state_dir / "mosquitto").resolve() / "mosquitto.pid",
            "tansu": settings.state_dir / "kafka" / "tansu.pid"}


def _memory(settings: Settings, pipeline: Pipeline) -> list[Memory]:
    found = []
    for name, pid in pipeline.pids().items():
        rss, peak = memory_kb(pid)
        found.append(Memory(component=name, rss_kb=rss, peak_kb=peak))
    for name, path in _broker_pids(settings).items():
        pids = _pid_file(path)
        rss, peak = memory_kb(pids[0]) if pids else (None, None)
        note = "" if pids else "not started by vigil: not measured"
        if name == "tansu" and pids:
            note = "memory storage: holds every record produced since it started"
        found.append(Memory(component=name, rss_kb=rss, peak_kb=peak, note=note))
    postmaster = settings.state_dir.resolve() / "postgres" / "data" / "postmaster.pid"
    if postmaster.exists():
        rss, peak = memory_kb(int(postmaster.read_text().split()[0]))
        found.append(Memory(component="postgresql (postmaster)", rss_kb=rss, peak_kb=peak,
                            note="backends are separate processes"))
    else:
        found.append(Memory(component="postgresql", rss_kb=None, peak_kb=None,
                            note="a server vigil did not start: not measured"))
    rss, peak = memory_kb(os.getpid())
    found.append(Memory(component="load generator (this process)", rss_kb=rss, peak_kb=peak,
                        note="its publisher processes have exited"))
    return found


def _measure_ceilings(settings: Settings, report: BenchReport, run_id: str, sizes: dict) -> None:
    from vigil.broker_secrets import ensure_secrets

    broker = ensure_secrets(settings)
    messages, devices = sizes["messages"], sizes["devices"]
    with _phase("ceiling: MQTT broker fan-in"):
        fan_in, round_trips = ceilings.broker_fan_in(
            settings, run_id, admin_password=broker.admin_password, ingest_password=broker.ingest_password,
            messages=messages, devices=devices, connections=sizes["connections"])
    report.ceilings.append(fan_in)
    report.stage_latencies.append(StageLatency(stage="Mosquitto round trip", measure="publish -> subscriber, "
                                               "one at a time, QoS 1", latency=summarize_latency(round_trips)))
    with _phase("ceiling: Kafka produce and consume"):
        ceilings.create_bench_topic(settings)
        try:
            for readings in (1, 10):
                report.ceilings.append(ceilings.kafka_produce(settings, run_id, records=messages * _KAFKA_FACTOR,
                                                              readings=readings, devices=devices))
            report.ceilings.append(ceilings.kafka_consume(settings, expected=2 * messages * _KAFKA_FACTOR))
            # Faust's own cost per record, to set beside the stream worker's (its 1-reading records).
            report.ceilings.append(bare_faust(settings, topic=ceilings.BENCH_TOPIC,
                                              expected=min(messages * _KAFKA_FACTOR, _BARE_FAUST_RECORDS)))
            report.stage_latencies.append(StageLatency(
                stage="Kafka round trip", measure="produce -> Faust-like consumer, one at a time",
                latency=summarize_latency(ceilings.kafka_round_trip(settings, with_empty_partition=False))))
            report.stage_latencies.append(StageLatency(
                stage="Kafka round trip", measure="the same, fetching an empty partition too",
                latency=summarize_latency(ceilings.kafka_round_trip(settings, with_empty_partition=True, samples=8))))
        finally:
            refused = ceilings.delete_bench_topic(settings)
            if refused:
                report.notes.append(f"the Kafka topic {ceilings.BENCH_TOPIC} could not be deleted: {refused}")
    with _phase("ceiling: PostgreSQL COPY"):
        for readings in (1, 10):
            report.ceilings.append(ceilings.copy_ceiling(settings, run_id, records=messages, readings=readings,
                                                         devices=devices))
    with _phase("ceiling: ingest validation and rule evaluation, in-process"):
        cpu_messages = min(messages, _CPU_CORE_MESSAGES)
        for readings in (1, 10):
            report.ceilings.append(ceilings.validation_ceiling(messages=cpu_messages, readings=readings,
                                                               devices=devices))
        for readings in (1, 10):
            report.ceilings.append(ceilings.rules_ceiling(messages=cpu_messages, readings=readings, devices=devices))


def _end_to_end(settings: Settings, report: BenchReport, pipeline: Pipeline, sizes: dict) -> None:
    # Every copy of a service counts towards its line.
    groups = {name: (lambda name=name: pipeline.service_pids(name))
              for name in ("ingest", "streams", "api", "scheduler")}
    for name, path in _broker_pids(settings).items():
        groups[name] = lambda path=path: _pid_file(path)
    groups["postgres (vigil's sessions)"] = pipeline.postgres_backends
    groups["load generator"] = lambda: [os.getpid()]
    meter = CpuMeter(groups, cpus=report.cpus)
    report.cpu = meter.uses  # filled phase by phase, so a run that stops early still shows its phases
    workers, ingest = pipeline.copies["streams"], pipeline.copies["ingest"]
    with _phase(f"starting {_count(ingest, 'ingest process', 'ingest processes')}, "
                f"{_count(workers, 'stream worker', 'stream workers')}, the API and the scheduler"):
        pipeline.start()
    with _phase(f"registering {sizes['devices']} devices and {2 * sizes['leaks']} leak sensors"):
        fleet = pipeline.provision(devices=sizes["devices"], connections=sizes["connections"],
                                   leaks=sizes["leaks"])
    with _phase("waiting for a probe message to be stored"):
        probe_s = pipeline.probe(fleet)
    report.notes.append(f"the probe message was stored {probe_s:.1f} s after it was published "
                        "(the stream worker's start-up)")
    # The alert runs come straight after the single-reading run, before the 10-reading one: that
    # run leaves every device with about 1,500 readings inside the 2-minute lateness allowance, and
    # a half-load run started within those 2 minutes would measure rewriting those states instead.
    runs = [_throughput(pipeline, meter, fleet, sizes, readings=1, number=1)]
    report.throughput.append(runs[-1])
    with _phase("alert latency, idle"):
        report.alerts.append(pipeline.alert_latency(fleet, meter.phase("alerts idle"), label="idle",
                                                    leaks=fleet.idle_leaks, background_per_s=0.0, duration_s=0.0,
                                                    first_seq=first_seq(3)))
    half = 0.5 * (runs[0].messages_per_s or 0.0)
    with _phase(f"alert latency at half load ({half:,.0f} msg/s for {sizes['load_seconds']:.0f} s)"):
        report.alerts.append(pipeline.alert_latency(fleet, meter.phase("alerts, half load"), label="half load",
                                                    leaks=fleet.loaded_leaks, background_per_s=half,
                                                    duration_s=sizes["load_seconds"], first_seq=first_seq(4)))
    report.throughput.append(_throughput(pipeline, meter, fleet, sizes, readings=10, number=2))
    report.memory = _memory(settings, pipeline)


def _soak(settings: Settings, report: BenchReport, pipeline: Pipeline, sizes: dict, seconds: float) -> None:
    """The 1-reading run finds the maximum; then half of it for `seconds`, a line a minute, and a verdict."""
    groups = {name: (lambda name=name: pipeline.service_pids(name)) for name in ("ingest", "streams", "api")}
    meter = CpuMeter(groups, cpus=report.cpus)
    report.cpu = meter.uses
    with _phase("starting the services"):
        pipeline.start()
    with _phase(f"registering {sizes['devices']} devices"):
        fleet = pipeline.provision(devices=sizes["devices"], connections=sizes["connections"], leaks=1)
    with _phase("waiting for a probe message to be stored"):
        pipeline.probe(fleet)
    report.throughput.append(_throughput(pipeline, meter, fleet, sizes, readings=1, number=1))
    half = 0.5 * (report.throughput[0].messages_per_s or 0.0)
    console.print(f"→ soak: {half:,.0f} msg/s (half the maximum) for {seconds:,.0f} s; a line a minute")

    def line(m: SoakMinute) -> None:
        latency = (f"p50 {m.latency.p50_ms:,.0f} ms · p99 {m.latency.p99_ms:,.0f} ms" if m.latency else "none stored")
        memory = ", ".join(f"{name} {mb:,.0f} MB" for name, mb in m.rss_mb.items())
        lag = "?" if m.lag is None else f"{m.lag:,}"
        console.print(f"  minute {m.minute}: stored {m.stored_per_s:,.0f} msg/s · lag {lag} · "
                      f"publish -> stored {latency} · {memory}")

    result = soak(pipeline.paced_jobs(fleet, readings=1, first_seq=first_seq(5), duration_s=seconds, rate_per_s=half),
                  database_url=settings.database_url, pattern=fleet.load_pattern,
                  bootstrap=settings.kafka_bootstrap, partitions=settings.telemetry_partitions,
                  pids=pipeline.pids, rate_per_s=half, seconds=seconds, on_minute=line)
    report.soak = asdict(result)
    if result.flat:
        console.print("[green]soak: throughput, lag, memory and latency stayed flat[/green]")
    else:
        console.print("[red]soak: not flat[/red]: " + "; ".join(result.reasons))


def _fleet_state(settings: Settings, devices: int, json_path: Path | None) -> None:
    from bench import fleet_state

    try:
        result = fleet_state.measure(settings, devices=devices, report=console.print)
    except fleet_state.FleetError as e:
        console.print(f"[red]the fleet run stopped:[/red] {e}")
        raise typer.Exit(1) from e
    fleet_state.render(result, console)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _throughput(pipeline: Pipeline, meter: CpuMeter, fleet: Fleet, sizes: dict, *, readings: int,
                number: int) -> Throughput:
    with _phase(f"{per_message(readings)}: publishing") as status:
        def progress(stored: int, expected: int) -> None:
            status.update(f"{per_message(readings)}: {stored:,} of {expected:,} stored")

        return pipeline.throughput(fleet, meter.phase(per_message(readings)), messages=sizes["messages"],
                                   readings=readings, first_seq=first_seq(number), report_progress=progress)


def _clean_up(settings: Settings, run_id: str) -> dict[str, int]:
    """Delete the bench's telemetry and alerts; its members, devices and gateways stay registered."""
    deleted: dict[str, int] = {}
    for prefix in (f"bench-{run_id}-", f"{ceilings.ceiling_prefix(run_id)}-"):
        for table, count in ceilings.delete_devices_rows(settings.database_url, prefix + "%").items():
            deleted[table] = deleted.get(table, 0) + count
    return deleted


def _revoke(settings: Settings, token: str) -> None:
    from vigil.tokens import token_digest

    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE token_sha256 = %s", (token_digest(token),))


def bench(
    messages: Annotated[int | None, typer.Option(
        help="Messages per end-to-end run, sent once with 1 and once with 10 readings each "
             "(default 60000; 5000 with --quick).", min=100)] = None,
    devices: Annotated[int | None, typer.Option(help="Simulated home devices (default 400; 40 with --quick).",
                                                min=1)] = None,
    connections: Annotated[int, typer.Option(help="Publishing gateway connections, one process each.",
                                             min=1, max=64)] = 4,
    leaks: Annotated[int | None, typer.Option(help="Leak sensors timed per alert run (default 40; 10 with --quick).",
                                              min=1)] = None,
    load_seconds: Annotated[float | None, typer.Option(
        help="Length of the half-load background run (default 30; 10 with --quick).", min=5)] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: a smoke run with about 10 s of load.")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the figures to this JSON file.",
                                                   dir_okay=False)] = None,
    workers: Annotated[int, typer.Option(help="Stream workers sharing the telemetry partitions.", min=1)] = 1,
    ingest: Annotated[int, typer.Option(help="Ingest processes sharing the broker subscription.", min=1)] = 1,
    fleet: Annotated[int | None, typer.Option(
        help="Instead of the usual runs: one stream worker judges a realistic fleet of this many devices "
             "(half wearables, half home sensors); its memory, changelog bytes and restart per device "
             "(bench.fleet_state).", min=2)] = None,
    soak_seconds: Annotated[float | None, typer.Option(
        "--soak", help="Instead of the usual runs: the maximum, then half of it for this long, with "
                       "throughput, lag, memory and latency every minute and a verdict on whether they "
                       "stayed flat.", min=120)] = None,
) -> None:
    """Measure each stage's ceiling, then the whole pipeline end to end, and compare with the aims."""
    from stack import manager
    from stack.process import StackError
    from vigil.tokens import issue_token

    try:
        settings = get_settings()
    except ConfigError as e:
        console.print(f"[red]Configuration error:[/red] {e}")
        raise typer.Exit(2) from e
    configure_logging("WARNING")
    if fleet:
        _fleet_state(settings, fleet, json_path)
        return
    defaults = _QUICK if quick else _FULL
    sizes = {"messages": messages or defaults["messages"], "devices": devices or defaults["devices"],
             "connections": connections, "leaks": leaks or defaults["leaks"],
             "load_seconds": load_seconds or defaults["load_seconds"]}
    sizes["connections"] = min(sizes["connections"], sizes["devices"])
    run_id = new_run_id()
    report = BenchReport(run_id=run_id, cpus=cpu_count(), sizes=sizes, workers=workers, ingest=ingest)
    try:
        with _phase("bringing the stack up"):
            manager.up(settings)
    except StackError as e:
        console.print(f"[red]stack up failed:[/red] {e}")
        raise typer.Exit(1) from e
    with _phase("vacuuming the telemetry tables, so that every run starts alike"):
        ceilings.vacuum_telemetry(settings.database_url)
    token = settings.admin_token or issue_token(settings.database_url, "admin", None)
    log_path = settings.state_dir / "logs" / f"bench-{run_id}.log"
    try:
        pipeline = Pipeline(settings, run_id=run_id, token=token, log_path=log_path, workers=workers, ingest=ingest)
    except ValueError as e:  # copies that would share a port
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e
    failed = None
    try:
        if soak_seconds:
            _soak(settings, report, pipeline, sizes, soak_seconds)
        else:
            _measure_ceilings(settings, report, run_id, sizes)
            _end_to_end(settings, report, pipeline, sizes)
    except (BenchError, RuntimeError) as e:
        failed = e
    finally:
        with _phase("stopping the services and deleting the bench's telemetry"):
            pipeline.stop()
            deleted = _clean_up(settings, run_id)
            ceilings.vacuum_telemetry(settings.database_url)
            if token != settings.admin_token:
                _revoke(settings, token)
    report.notes[:0] = cpu_notes(report.cpu, cpus=report.cpus)
    report.notes.append("publish -> stored latencies of the full-speed runs include the backlog queued in the "
                        "broker while publishers outrun the pipeline; the half-load run shows the unqueued path")
    report.notes.append(f"services' output: {log_path}; deleted the bench's rows: "
                        + ", ".join(f"{table} {count:,}" for table, count in deleted.items())
                        + f"; its members, devices and gateways (ids bench-{run_id}-*) stay registered")
    render(report, console)
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        console.print(f"figures written to {json_path}")
    if failed is not None:
        console.print(f"[red]the bench stopped early:[/red] {failed}")
        raise typer.Exit(1)
