"""`vigil demo`: the whole product on one machine, driven through two scripted incidents.

Brings the stack up, starts every service, registers a small fleet through the API, replays the
last half hour of its telemetry at 60x (a leak in a kitchen, tachycardia at rest) and shows what
Vigil made of it: messages, stored readings, refusals and alerts.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulators.fleet import FleetSummary, Progress, api_client, publish_fleet
from simulators.plan import FleetPlan
from simulators.provisioning import provision
from simulators.scenarios import Injection
from vigil.runner import SERVICES, Supervisor
from vigil.settings import Settings

DEMO_SPAN_S = 30 * 60
DEMO_SPEED = 60.0
DEMO_SCENARIOS = ("leak@4m:1", "tachycardia@6m:1")
CARE_MANAGER = "cm-demo"


@dataclass(frozen=True, slots=True)
class Tally:
    """What the database holds for this run's devices."""

    messages: int
    readings: int
    rejected: dict[str, int]
    alerts: list[tuple]


def tally(database_url: str, prefix: str) -> Tally:
    pattern = prefix + "%"
    with psycopg.connect(database_url, autocommit=True) as conn:
        messages, readings = conn.execute(
            "SELECT count(*), coalesce(sum(readings), 0) FROM messages WHERE device_id LIKE %s", (pattern,)
        ).fetchone()
        rejected = dict(conn.execute(
            "SELECT reason, count(*) FROM dead_letters WHERE device_id LIKE %s GROUP BY reason", (pattern,)
        ).fetchall())
        alerts = conn.execute(
            "SELECT type, severity, status, device_id, triggered_at, raised_at FROM alerts "
            "WHERE device_id LIKE %s ORDER BY triggered_at", (pattern,)).fetchall()
    return Tally(messages, int(readings), rejected, alerts)


def _wait_healthy(api_url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the API at {api_url} did not report healthy within {timeout_s:.0f} s")


def _progress_table(progress: Progress | None, counts: Tally | None) -> Table:
    table = Table("event time", "published", "acked by broker", "stored", "readings", "rejected", "alerts",
                  title="Vigil demo: replaying the last 30 minutes at 60x")
    if progress is not None and counts is not None:
        table.add_row(f"{progress.event_time:%H:%M:%S}", str(progress.published), str(progress.acked),
                      str(counts.messages), str(counts.readings), str(sum(counts.rejected.values())),
                      str(len(counts.alerts)))
    return table


def _summary(console: Console, summary: FleetSummary, counts: Tally) -> None:
    table = Table("what", "count", title="What happened")
    table.add_row("messages published", str(summary.published))
    table.add_row("acknowledged by the broker", str(summary.acked))
    table.add_row("messages stored", str(counts.messages))
    table.add_row("readings stored", str(counts.readings))
    table.add_row("refused (dead letters)", ", ".join(f"{k}: {v}" for k, v in counts.rejected.items()) or "0")
    table.add_row("alerts raised", str(len(counts.alerts)))
    console.print(table)
    alerts = Table("type", "severity", "status", "device", "condition met (event time)", "raised (wall time)",
                   title="Alerts")
    for kind, severity, status, device, triggered, raised in counts.alerts:
        alerts.add_row(kind, severity, status, device, f"{triggered:%H:%M:%S}", f"{raised:%H:%M:%S}")
    console.print(alerts)
    for played in summary.played:
        console.print(f"  scripted {played.scenario} on {played.device_id}: "
                      f"{played.starts_at:%H:%M:%S}-{played.ends_at:%H:%M:%S} (event time)")


def run_demo(settings: Settings, token: str, *, console: Console, stay_open: bool) -> Tally:
    """Run the demo against an already started stack; returns what was stored for the demo fleet."""
    api_url = f"http://127.0.0.1:{settings.api_port}"
    log_dir = settings.state_dir / "logs"
    supervisor = Supervisor(list(SERVICES), log_dir=log_dir)
    supervisor.start()
    # Restarts a service that dies (say, at start-up while a port is still held) until stop().
    threading.Thread(target=supervisor.watch, name="supervisor", daemon=True).start()
    console.print(f"services started; their logs are in {log_dir}/")
    try:
        with console.status("starting ingest, stream worker and API"):
            _wait_healthy(api_url)
        plan = FleetPlan(run_id=f"demo{uuid.uuid4().hex[:4]}", wearables=3, homes=3, seed=7,
                         injections=tuple(Injection.parse(s) for s in DEMO_SCENARIOS))
        with api_client(api_url, token) as http:
            provisioned = provision(http, plan, care_manager_id=CARE_MANAGER)
        console.print(f"registered {plan.wearables} wearables and {plan.homes} home hubs "
                      f"for {len(set(provisioned.members.values()))} members")
        prefix = f"sim-{plan.run_id}-"
        latest: list[Progress] = []
        with Live(_progress_table(None, None), console=console, refresh_per_second=2) as live:
            def show(progress: Progress) -> None:
                latest[:] = [progress]
                live.update(_progress_table(progress, tally(settings.database_url, prefix)))

            summary = publish_fleet(plan, provisioned, mqtt_url=settings.mqtt_url, span_s=DEMO_SPAN_S,
                                    speed=DEMO_SPEED, progress=show)
            # Let the pipeline drain: every acknowledged message stored, the alerts raised.
            deadline = time.monotonic() + 60
            counts = tally(settings.database_url, prefix)
            while time.monotonic() < deadline and (counts.messages < summary.acked
                                                   or len(counts.alerts) < len(DEMO_SCENARIOS)):
                time.sleep(1)
                counts = tally(settings.database_url, prefix)
                if latest:
                    live.update(_progress_table(latest[0], counts))
        _summary(console, summary, counts)
        if stay_open:
            console.print(f"\nAPI and console: {api_url}  (try: curl -H 'Authorization: Bearer {token}' "
                          f"{api_url}/api/v1/alerts)\nPress Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        return counts
    finally:
        with console.status("stopping services"):
            supervisor.stop()
