"""`vigil eval`: the labelled scenario library through the live pipeline, scored per rule."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from simulators.labelled import select
from simulators.labelled.model import Scenario
from vigil.rules.catalog import ALERT_TYPES


def _library_table(scenarios: list[Scenario]) -> Table:
    table = Table("scenario", "role", "rules", "expects", "summary", title=f"{len(scenarios)} labelled scenarios")
    for s in scenarios:
        expects = ", ".join(f"{e.type}/{e.severity}" for e in s.expected) or "nothing"
        table.add_row(s.name, s.role, ", ".join(s.rules), expects, s.summary)
    return table


def evaluate(
    only: Annotated[list[str] | None, typer.Option(
        "--only", help=f"Only scenarios exercising this rule; repeatable. One of: {', '.join(ALERT_TYPES)}.")] = None,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", help="Only scenarios with this name or shell pattern (e.g. 'co_*'); repeatable.")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also save the full result as JSON here.")] = None,
    min_precision: Annotated[float, typer.Option(help="Exit 1 if any rule's precision is below this.")] = 0.95,
    min_recall: Annotated[float, typer.Option(help="Exit 1 if any rule's recall is below this.")] = 0.95,
    keep_running: Annotated[bool, typer.Option(
        "--keep-running", help="Leave the services this command started running until Ctrl-C.")] = False,
    settle: Annotated[float, typer.Option(help="Seconds to wait after every message is stored.")] = 15.0,
    parallel: Annotated[int, typer.Option(help="Scenarios published at the same time.")] = 8,
    pace: Annotated[float, typer.Option(
        help="Milliseconds between a replayed device's messages; 0 sends them as fast as the broker acknowledges. "
             "Out-of-order and redelivered scenarios are always spaced 500 ms, so each message is judged alone.")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the readings' noise; labels hold for every seed.")] = 0,
    list_only: Annotated[bool, typer.Option("--list", help="List the selected scenarios and exit.")] = False,
) -> None:
    """Run the labelled scenarios through the live pipeline; print per rule precision, recall and latency."""
    from simulators.evaluation import report
    from simulators.evaluation.runner import EvaluationError, admin_token, live_pipeline, run
    from simulators.evaluation.scoring import score
    from simulators.provisioning import ProvisioningError
    from vigil.logs import configure_logging
    from vigil.settings import ConfigError, get_settings

    console = Console()
    if not console.is_terminal:
        # Piped into a file or a log: wide enough that no column of the tables is cut.
        console = Console(width=max(console.width, 180))
    try:
        scenarios = select(only or (), scenario or ())
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    if list_only:
        console.print(_library_table(scenarios))
        return
    try:
        settings = get_settings()
    except ConfigError as e:
        console.print(f"[red]Configuration error:[/red] {e}")
        raise typer.Exit(2) from e
    configure_logging("WARNING")
    try:
        with console.status("starting") as status, live_pipeline(settings, status.update) as started:
            result = run(scenarios, settings, admin_token(settings), parallel=parallel, settle_s=settle, seed=seed,
                         gap_s=pace / 1000, progress=status.update)
            status.stop()
            scored = score(result.observations)
            report.show(console, result, scored, min_precision=min_precision, min_recall=min_recall)
            if json_path is not None:
                json_path.write_text(json.dumps(report.to_json(result, scored, min_precision=min_precision,
                                                               min_recall=min_recall), indent=2))
                console.print(f"saved {json_path}")
            if keep_running and started:
                console.print(f"services left running at http://127.0.0.1:{settings.api_port}; Ctrl-C stops them")
                with contextlib.suppress(KeyboardInterrupt):
                    threading.Event().wait()
    except (EvaluationError, ProvisioningError) as e:
        console.print(f"[red]eval: {e}[/red]")
        raise typer.Exit(1) from e
    failing = scored.failing(min_precision, min_recall)
    if failing:
        console.print(f"[red]below precision {min_precision} or recall {min_recall}: "
                      f"{', '.join(r.type for r in failing)}[/red]")
        raise typer.Exit(1)
