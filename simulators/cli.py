"""`vigil simulate`: a fleet of simulated wearables and home sensors driving the real pipeline."""

from __future__ import annotations

import signal
import threading
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulators.fleet import FleetSummary, Progress, run_fleet
from simulators.plan import FleetPlan
from simulators.provisioning import ProvisioningError
from simulators.publishing import PublishError
from simulators.scenarios import SCENARIOS, Injection, parse_duration
from vigil.settings import get_settings

# No square brackets: typer's rich help would take them for markup.
_SCENARIO_HELP = ("NAME, NAME@OFFSET or NAME@OFFSET:DEVICE, repeatable (e.g. leak@5m:2); OFFSET is event time "
                  "after the start (default 1m), DEVICE the 1-based number among devices of that kind. Names: "
                  + "; ".join(f"{s.name} ({s.kind}: {s.summary})" for s in SCENARIOS.values()))


def _summary_table(summary: FleetSummary) -> Table:
    table = Table(title=f"Simulator run {summary.run_id}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    via = "gateways" if summary.via_gateways else "direct (one per device)"
    rate = summary.published / summary.elapsed_s if summary.elapsed_s else 0.0
    refused = ", ".join(f"{reason}: {n}" for reason, n in summary.refused.items()) or "0"
    rows = [
        ("devices", str(summary.devices)),
        ("MQTT connections", f"{summary.connections} {via}"),
        ("event time", f"{summary.event_start:%Y-%m-%d %H:%M:%S} → {summary.event_end:%H:%M:%S} UTC"),
        ("messages published", str(summary.published)),
        ("readings", str(summary.readings)),
        ("acknowledged by broker", str(summary.acked)),
        ("refused by broker", refused),
        ("unanswered", str(summary.unanswered)),
        ("not queued by client", str(summary.not_queued)),
        ("wall time", f"{summary.elapsed_s:.1f} s ({rate:.1f} msg/s)"),
    ]
    rows.extend((f"scenario {p.scenario}", f"{p.device_id} {p.starts_at:%H:%M:%S}–{p.ends_at:%H:%M:%S}")
                for p in summary.played)
    for name, value in rows:
        table.add_row(name, value)
    return table


def _status_line(p: Progress) -> str:
    clock = "live" if p.caught_up else "replaying"
    return (f"{clock} at {p.event_time:%H:%M:%S} UTC · {p.elapsed_s:.0f} s · {p.published} messages, "
            f"{p.readings} readings · acked {p.acked} · refused {p.refused}")


def simulate(
    wearables: Annotated[int, typer.Option(help="Number of wearables (one member each).")] = 2,
    homes: Annotated[int, typer.Option(help="Number of home sensors (paired with the members' wearables).")] = 2,
    scenario: Annotated[list[str] | None, typer.Option("--scenario", "-s", help=_SCENARIO_HELP)] = None,
    span: Annotated[str, typer.Option(help="Event time to replay: the clock starts this long ago (e.g. 30m).")] = "0s",
    speed: Annotated[float, typer.Option(help="How many times faster than real time the replay runs.")] = 1.0,
    seconds: Annotated[float | None, typer.Option(
        help="Stop after this many wall seconds; default: when the replay has reached now and every "
             "scenario has played, or on Ctrl-C at speed 1.")] = None,
    sample_interval: Annotated[int, typer.Option(help="Event seconds between a device's samples.")] = 15,
    samples_per_message: Annotated[int, typer.Option(
        help="Samples batched in one message (7 readings each for a wearable, 11 for a home sensor).")] = 4,
    rate: Annotated[float | None, typer.Option(help="Cap on messages per wall second across the fleet.")] = None,
    gateway_size: Annotated[int | None, typer.Option(
        help="Devices per gateway connection; 0 for a connection per device (at most 500). "
             "Default: direct up to 50 devices, else gateways of 250.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every device's signal: same seed, same readings.")] = 0,
    run_id: Annotated[str | None, typer.Option(help="Tag in device ids (sim-<run>-wb-0001); default random.")] = None,
    care_manager: Annotated[str, typer.Option(help="care_manager_id of the simulated members.")] = "sim-care-manager",
    mqtt_url: Annotated[str | None, typer.Option(help="Broker URL; default VIGIL_MQTT_URL.")] = None,
    api_url: Annotated[str | None, typer.Option(help="API base URL; default http://127.0.0.1:VIGIL_API_PORT.")] = None,
    token: Annotated[str | None, typer.Option(help="Admin bearer token; default VIGIL_ADMIN_TOKEN.")] = None,
) -> None:
    """Register a simulated fleet through the API and publish its telemetry over MQTT."""
    settings = get_settings()
    token = token or settings.admin_token
    if not token:
        raise typer.BadParameter("pass --token or set VIGIL_ADMIN_TOKEN (make one with `vigil token create`)",
                                 param_hint="--token")
    try:
        plan = FleetPlan(run_id=run_id or uuid.uuid4().hex[:6], wearables=wearables, homes=homes,
                         sample_interval_s=sample_interval, samples_per_message=samples_per_message, seed=seed,
                         injections=tuple(Injection.parse(text) for text in scenario or ()))
        span_s = parse_duration(span)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e

    console = Console()
    stop = threading.Event()
    # Ctrl-C ends the run the orderly way: in-flight messages are drained and the summary printed.
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with console.status("registering devices…") as status:
            summary = run_fleet(
                plan, api_url=api_url or f"http://127.0.0.1:{settings.api_port}", token=token,
                mqtt_url=mqtt_url or settings.mqtt_url, care_manager_id=care_manager, gateway_size=gateway_size,
                span_s=span_s, speed=speed, wall_s=seconds, max_rate=rate,
                progress=lambda p: status.update(_status_line(p)), stop=stop)
    except (ProvisioningError, PublishError, ValueError) as e:
        console.print(f"[red]simulate: {e}[/red]")
        raise typer.Exit(1) from e
    finally:
        signal.signal(signal.SIGINT, previous)
    console.print(_summary_table(summary))
