"""The bench's figures as plain data, the arithmetic over them, and their rendering as rich tables.

Pure: no clock and no I/O. The measuring modules hand in raw counts, timings and CPU ticks; this
module turns them into rates, percentiles, shares of a core and met/not-met verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from rich.columns import Columns
from rich.console import Console
from rich.table import Table

# Issue 9's aims: CPU of the whole pipeline (every process but the load generator) per message stored,
# and publish -> alert raised when idle and at half load.
AIM_CPU_MS_PER_MESSAGE = 0.5  # single-reading messages
AIM_CPU_MS_PER_READING = 0.06  # in 10-reading messages
AIM_ALERT_P99_IDLE_MS = 200.0
AIM_ALERT_P99_MS = 1_000.0
# Not part of the pipeline whose cost is measured: it competes for the cores, but it is the load.
LOAD_GENERATOR = "load generator"
# Issue 7's promise: a critical alert reaches the member's channel within 2 s (p95) of being raised.
AIM_OUTREACH_P95_MS = 2_000.0
MISSING = "—"


# -- arithmetic ---------------------------------------------------------------------------------

def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `ordered` lies, interpolated like PostgreSQL's percentile_cont."""
    if not ordered:
        raise ValueError("a percentile of no values is undefined")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be between 0 and 1, not {fraction}")
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """Percentiles of one latency, in milliseconds."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def summarize_latency(values_ms: Iterable[float]) -> Latency | None:
    """p50/p95/p99/max of the values; None when there are none."""
    ordered = sorted(values_ms)
    if not ordered:
        return None
    return Latency(count=len(ordered), p50_ms=percentile(ordered, 0.50), p95_ms=percentile(ordered, 0.95),
                   p99_ms=percentile(ordered, 0.99), max_ms=ordered[-1])


def rate(count: int, seconds: float) -> float | None:
    """Events per second; None when no time passed."""
    return count / seconds if seconds > 0 else None


def cpu_shares(before: Mapping[str, Mapping[int, int]], after: Mapping[str, Mapping[int, int]], *,
               wall_s: float, ticks_per_s: int) -> dict[str, float]:
    """Percent of one core each component used between two samples of its processes' CPU ticks.

    A process that appeared after the first sample counts from zero: all its CPU fell in between.
    One that vanished before the second sample is lost, which only ever under-counts.
    """
    if wall_s <= 0:
        raise ValueError(f"wall_s must be positive, not {wall_s}")
    shares = {}
    for component, ticks in after.items():
        earlier = before.get(component, {})
        used = sum(max(0, t - earlier.get(pid, 0)) for pid, t in ticks.items())
        shares[component] = 100.0 * used / ticks_per_s / wall_s
    return shares


def machine_share(before: tuple[int, int], after: tuple[int, int], *, cpus: int) -> float:
    """Percent of one core the whole machine was busy, from two (busy, total) samples of /proc/stat."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return 100.0 * cpus * busy / total if total > 0 else 0.0


# -- figures -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Ceiling:
    """One stage measured alone: `count` units in `seconds`."""

    stage: str
    measure: str
    count: int
    seconds: float
    unit: str
    payload_bytes: int = 0
    note: str = ""

    @property
    def per_s(self) -> float | None:
        return rate(self.count, self.seconds)

    @property
    def mb_per_s(self) -> float | None:
        return rate(self.payload_bytes, self.seconds * 1e6) if self.payload_bytes else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StageLatency:
    """One stage's latency measured alone, on an idle stage."""

    stage: str
    measure: str
    latency: Latency | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Throughput:
    """An end-to-end run at full speed: what was published and what the database holds of it."""

    readings_per_message: int
    published: int
    acked: int
    stored: int
    readings_stored: int
    publish_s: float  # first publish to the last broker acknowledgement, on the client
    received_s: float  # first sent_at to the last received_at (ingest's clock), from the database
    pipeline_s: float  # first sent_at to the last stored_at, from the database
    to_received: Latency | None  # publish -> ingest took it from the broker
    latency: Latency | None  # publish -> stored

    @property
    def messages_per_s(self) -> float | None:
        return rate(self.stored, self.pipeline_s)

    @property
    def readings_per_s(self) -> float | None:
        return rate(self.readings_stored, self.pipeline_s)

    @property
    def publish_per_s(self) -> float | None:
        return rate(self.acked, self.publish_s)

    @property
    def received_per_s(self) -> float | None:
        return rate(self.stored, self.received_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertLatency:
    """Water-leak alerts raised by readings published at recorded wall times, under some background load."""

    label: str
    leaks: int
    raised: int
    background_target_per_s: float
    background_achieved_per_s: float
    to_received: Latency | None  # publish -> ingest received it
    to_stored: Latency | None  # publish -> its message stored
    to_raised: Latency | None  # publish -> alert row raised
    told: int = 0  # members whose channel received the alert's first message
    to_member: Latency | None = None  # publish -> the member's channel received the message
    raised_to_member: Latency | None = None  # alert row raised -> the member's channel received it


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuUse:
    """Percent of one core per component over one phase, plus the whole machine."""

    phase: str
    wall_s: float
    shares: dict[str, float]
    machine: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """Resident memory of one process (or a group of them), now and at its peak."""

    component: str
    rss_kb: int | None
    peak_kb: int | None
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Aim:
    name: str
    target: str
    measured: str
    met: bool | None  # None: not measured


@dataclass(kw_only=True)
class BenchReport:
    """Everything one `vigil bench` run found."""

    run_id: str
    cpus: int
    sizes: dict[str, float]
    workers: int = 1  # stream workers
    ingest: int = 1  # ingest processes
    ceilings: list[Ceiling] = field(default_factory=list)
    stage_latencies: list[StageLatency] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    alerts: list[AlertLatency] = field(default_factory=list)
    cpu: list[CpuUse] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    # `vigil bench --soak`: bench.soak.SoakResult as plain data (this module does not import the soak).
    soak: dict | None = None
    notes: list[str] = field(default_factory=list)

    def run_with(self, readings_per_message: int) -> Throughput | None:
        return next((t for t in self.throughput if t.readings_per_message == readings_per_message), None)

    def alert_run(self, label: str) -> AlertLatency | None:
        return next((a for a in self.alerts if a.label == label), None)

    def aims(self) -> list[Aim]:
        return judge_aims(self)

    def to_json(self) -> dict:
        """Plain JSON-ready data, derived rates included."""
        return {
            "run_id": self.run_id,
            "cpus": self.cpus,
            "sizes": self.sizes,
            "processes": {"streams": self.workers, "ingest": self.ingest},
            "ceilings": [asdict(c) | {"per_s": c.per_s, "mb_per_s": c.mb_per_s} for c in self.ceilings],
            "stage_latencies": [asdict(s) for s in self.stage_latencies],
            "throughput": [asdict(t) | {"messages_per_s": t.messages_per_s, "readings_per_s": t.readings_per_s,
                                        "publish_per_s": t.publish_per_s, "received_per_s": t.received_per_s}
                           for t in self.throughput],
            "alerts": [asdict(a) for a in self.alerts],
            "cpu": [asdict(c) for c in self.cpu],
            "memory": [asdict(m) for m in self.memory],
            "cpu_ms_per_message": {per_message(n): run_cpu(self, n) for n in (1, 10) if run_cpu(self, n)},
            "aims": [asdict(a) for a in self.aims()],
            "soak": self.soak,
            "notes": list(self.notes),
        }


def cpu_ms_per_message(use: CpuUse, messages: int) -> dict[str, float]:
    """CPU milliseconds each process spent per message stored in a phase, and `pipeline`: all of them but
    the load generator."""
    if messages <= 0:
        return {}
    per = {name: share / 100 * use.wall_s * 1000 / messages for name, share in use.shares.items()}
    per["pipeline"] = sum(ms for name, ms in per.items() if name != LOAD_GENERATOR)
    return per


def run_cpu(report: BenchReport, readings_per_message: int) -> dict[str, float]:
    """`cpu_ms_per_message` of the full-speed run with this many readings per message ({} when not run)."""
    run = report.run_with(readings_per_message)
    use = next((u for u in report.cpu if u.phase == per_message(readings_per_message)), None)
    return cpu_ms_per_message(use, run.stored) if run and use else {}


def _p99_raised(run: AlertLatency | None) -> float | None:
    return run.to_raised.p99_ms if run and run.to_raised and run.raised == run.leaks else None


def judge_aims(report: BenchReport) -> list[Aim]:
    """Issue 9's aims and issue 7's, each met, not met, or not measured."""
    single_cpu = run_cpu(report, 1).get("pipeline")
    batched_cpu = run_cpu(report, 10).get("pipeline")
    per_reading = None if batched_cpu is None else batched_cpu / 10
    idle, loaded = report.alert_run("idle"), report.alert_run("half load")
    idle_p99, p99 = _p99_raised(idle), _p99_raised(loaded)
    told_p95 = (idle.raised_to_member.p95_ms if idle and idle.raised_to_member and idle.told == idle.leaks
                else None)
    return [
        Aim(name="pipeline CPU per single-reading message", target=f"<= {AIM_CPU_MS_PER_MESSAGE} ms",
            measured=fmt_cpu_ms(single_cpu),
            met=None if single_cpu is None else single_cpu <= AIM_CPU_MS_PER_MESSAGE),
        Aim(name="pipeline CPU per reading, 10 per message", target=f"<= {AIM_CPU_MS_PER_READING} ms",
            measured=fmt_cpu_ms(per_reading),
            met=None if per_reading is None else per_reading <= AIM_CPU_MS_PER_READING),
        Aim(name="publish -> alert p99, idle", target=f"<= {fmt_ms(AIM_ALERT_P99_IDLE_MS)}",
            measured=MISSING if idle_p99 is None else fmt_ms(idle_p99),
            met=None if idle_p99 is None else idle_p99 <= AIM_ALERT_P99_IDLE_MS),
        Aim(name="publish -> alert p99 at half load", target=f"< {fmt_ms(AIM_ALERT_P99_MS)}",
            measured=MISSING if p99 is None else fmt_ms(p99),
            met=None if p99 is None else p99 < AIM_ALERT_P99_MS),
        Aim(name="alert raised -> member's channel p95, idle", target=f"< {fmt_ms(AIM_OUTREACH_P95_MS)}",
            measured=MISSING if told_p95 is None else fmt_ms(told_p95),
            met=None if told_p95 is None else told_p95 < AIM_OUTREACH_P95_MS),
    ]


def busiest(use: CpuUse, *, top: int = 3) -> list[tuple[str, float]]:
    """The components that used the most CPU in a phase, busiest first."""
    return sorted(use.shares.items(), key=lambda item: item[1], reverse=True)[:top]


def cpu_notes(uses: Iterable[CpuUse], *, cpus: int, other_threshold: float = 20.0) -> list[str]:
    """Where each phase's CPU went, and a warning when processes outside the bench took a share."""
    notes = []
    for use in uses:
        top = ", ".join(f"{name} {share:.0f} %" for name, share in busiest(use))
        other = max(0.0, use.machine - sum(use.shares.values()))
        notes.append(f"{use.phase}: machine {use.machine:.0f} % of {100 * cpus} %; busiest {top}"
                     + (f"; other processes {other:.0f} %" if other >= other_threshold else ""))
    return notes


# -- formatting ----------------------------------------------------------------------------------

def per_message(readings: int) -> str:
    return f"{readings} reading{'s' if readings != 1 else ''}/msg"


def fmt_cpu_ms(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f} ms"


def fmt_count(n: int) -> str:
    return f"{n:,}"


def fmt_rate(value: float | None, unit: str) -> str:
    if value is None:
        return MISSING
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return MISSING
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def fmt_latency(latency: Latency | None) -> str:
    if latency is None:
        return MISSING
    return (f"p50 {fmt_ms(latency.p50_ms)} · p95 {fmt_ms(latency.p95_ms)} · "
            f"p99 {fmt_ms(latency.p99_ms)} · max {fmt_ms(latency.max_ms)}")


def fmt_mb(kb: int | None) -> str:
    return MISSING if kb is None else f"{kb / 1024:,.0f} MB"


def ceiling_rows(ceilings: Iterable[Ceiling],
                 latencies: Iterable[StageLatency] = ()) -> list[tuple[str, str, str, str]]:
    """(stage, what was measured, sample, the ceiling or the latency) per measured stage."""
    rows = []
    for c in ceilings:
        figure = fmt_rate(c.per_s, f"{c.unit}/s")
        if c.mb_per_s is not None:
            figure += f" ({c.mb_per_s:,.1f} MB/s)"
        rows.append((c.stage, c.measure, f"{fmt_count(c.count)} in {c.seconds:.1f} s", figure))
    rows.extend((s.stage, s.measure, f"{s.latency.count} idle" if s.latency else MISSING, fmt_latency(s.latency))
                for s in latencies)
    return rows


def ceiling_notes(ceilings: Iterable[Ceiling]) -> list[str]:
    return [f"{c.stage} ({c.measure}): {c.note}" for c in ceilings if c.note]


def end_to_end_rows(report: BenchReport) -> list[tuple[str, str]]:
    """(figure, value) for the end-to-end runs."""
    rows: list[tuple[str, str]] = []
    for t in report.throughput:
        tag = per_message(t.readings_per_message)
        rows.append((f"{tag}: stored", f"{fmt_count(t.stored)} of {fmt_count(t.published)} messages "
                                      f"in {t.pipeline_s:.1f} s"))
        rows.append((f"{tag}: throughput", f"{fmt_rate(t.messages_per_s, 'msg/s')} = "
                                           f"{fmt_rate(t.readings_per_s, 'readings/s')}"))
        rows.append((f"{tag}: broker accepted", fmt_rate(t.publish_per_s, "msg/s")))
        rows.append((f"{tag}: ingest received", fmt_rate(t.received_per_s, "msg/s")))
        rows.append((f"{tag}: publish -> ingest (saturated)", fmt_latency(t.to_received)))
        rows.append((f"{tag}: publish -> stored (saturated)", fmt_latency(t.latency)))
    for a in report.alerts:
        load = (f"{fmt_rate(a.background_achieved_per_s, 'msg/s')} background"
                if a.background_target_per_s else "no background load")
        rows.append((f"alerts {a.label}", f"{a.raised} of {a.leaks} raised, {load}"))
        rows.append(("  publish -> alert raised", fmt_latency(a.to_raised)))
        rows.append((f"  alert raised -> member's channel ({a.told} told)", fmt_latency(a.raised_to_member)))
        rows.append(("  publish -> member's channel", fmt_latency(a.to_member)))
        rows.append(("  publish -> message stored", fmt_latency(a.to_stored)))
        rows.append(("  publish -> ingest received", fmt_latency(a.to_received)))
    return rows


def aim_rows(aims: Iterable[Aim]) -> list[tuple[str, str, str, str]]:
    verdict = {True: "[green]met[/green]", False: "[red]not met[/red]", None: "not measured"}
    return [(a.name, a.target, a.measured, verdict[a.met]) for a in aims]


def cpu_rows(uses: Sequence[CpuUse]) -> list[list[str]]:
    """One row per component (then the machine), one column per phase, in percent of one core."""
    components: list[str] = []
    for use in uses:
        components.extend(c for c in use.shares if c not in components)
    rows = [[name, *(f"{u.shares[name]:.0f} %" if name in u.shares else MISSING for u in uses)]
            for name in components]
    rows.append(["other processes", *(f"{max(0.0, u.machine - sum(u.shares.values())):.0f} %" for u in uses)])
    rows.append(["whole machine", *(f"{u.machine:.0f} %" for u in uses)])
    return rows


def memory_rows(memory: Iterable[Memory]) -> list[tuple[str, str, str, str]]:
    return [(m.component, fmt_mb(m.rss_kb), fmt_mb(m.peak_kb), m.note) for m in memory]


def render(report: BenchReport, console: Console) -> None:
    """Print the ceilings and the end-to-end figures side by side, then aims, CPU and memory."""
    console.print(f"[bold]Vigil bench[/bold] run {report.run_id}: {report.cpus} CPUs, "
                  f"{report.workers} stream worker{'s' if report.workers != 1 else ''} and "
                  f"{report.ingest} ingest process{'es' if report.ingest != 1 else ''}. The load generator "
                  "runs on this machine and competes with the services and brokers for them.")
    ceilings = Table("stage", "measured alone", "sample", "ceiling", title="Ceilings (each stage alone)")
    for row in ceiling_rows(report.ceilings, report.stage_latencies):
        ceilings.add_row(*row)
    end_to_end = Table("figure", "value", title="End to end (MQTT -> ingest -> Kafka -> streams -> PostgreSQL)")
    for row in end_to_end_rows(report):
        end_to_end.add_row(*row)
    console.print(Columns([ceilings, end_to_end]))
    aims = Table("aim", "target", "measured", "verdict", title="Aims")
    for row in aim_rows(report.aims()):
        aims.add_row(*row)
    console.print(aims)
    if report.cpu:
        cpu = Table("process", *(f"{u.phase} ({u.wall_s:.0f} s)" for u in report.cpu),
                    title=f"CPU, percent of one core ({report.cpus} cores = {100 * report.cpus} %)")
        for row in cpu_rows(report.cpu):
            cpu.add_row(*row)
        console.print(cpu)
        per = {n: run_cpu(report, n) for n in (1, 10)}
        if any(per.values()):
            console.print(cpu_per_message_table(per))
    if report.memory:
        memory = Table("process", "RSS now", "peak RSS", "", title="Memory at the end of the runs")
        for row in memory_rows(report.memory):
            memory.add_row(*row)
        console.print(memory)
    for note in ceiling_notes(report.ceilings) + report.notes:
        console.print(f"• {note}")


def cpu_per_message_table(per: Mapping[int, Mapping[str, float]]) -> Table:
    """CPU milliseconds per message stored, by process, for each full-speed run (and per reading)."""
    runs = [n for n in (1, 10) if per.get(n)]
    columns = [f"{per_message(n)}: per message" for n in runs] + [f"{per_message(n)}: per reading" for n in runs
                                                                    if n > 1]
    table = Table("process", *columns, title="CPU milliseconds per message stored (the load generator is not "
                                             "part of the pipeline)")
    names = list(dict.fromkeys(name for n in runs for name in per[n]))
    for name in [n for n in names if n != "pipeline"] + ["pipeline"]:
        cells = [fmt_cpu_ms(per[n].get(name)) for n in runs]
        cells += [fmt_cpu_ms(None if per[n].get(name) is None else per[n][name] / n) for n in runs if n > 1]
        table.add_row(f"[bold]{name}[/bold]" if name == "pipeline" else name, *cells)
    return table
