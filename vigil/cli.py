"""The `vigil` command: run the stack, the services, the demo, the simulators and the benchmark."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.logs import configure_logging
from vigil.runner import SERVICES
from vigil.settings import ConfigError, get_settings

app = typer.Typer(help="Vigil: telemetry in, health and hazard alerts and pre-filled claims out.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
stack_app = typer.Typer(help="Local infrastructure: MQTT broker, Kafka-protocol broker, PostgreSQL.",
                        no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(token_app, name="token")
console = Console()
# What a script capturing stdout should not get: the id of a token printed on stdout, errors.
err_console = Console(stderr=True)


def _register_tools() -> None:
    from bench.cli import bench
    from simulators.cli import simulate
    from simulators.eval_cli import evaluate

    app.command("simulate", help="Run a simulated fleet of wearables and home sensors through the broker.")(simulate)
    app.command("bench", help="End-to-end throughput and latency next to each stage's own ceiling.")(bench)
    app.command("eval", help="Run the labelled scenario library through the live pipeline; score every rule.")(evaluate)


_register_tools()


def _settings():
    try:
        return get_settings()
    except ConfigError as e:
        console.print(f"[red]Configuration error:[/red] {e}")
        raise typer.Exit(2) from e


@stack_app.command("up")
def stack_up() -> None:
    """Start what is missing, reuse what answers, create topics and apply the schema."""
    from stack import manager
    from stack.process import StackError
    from vigil.storage import StorageError

    settings = _settings()
    try:
        manager.up(settings, report=lambda name, state: console.print(f"  {name:<11} {state}"))
    except (StackError, StorageError) as e:
        console.print(f"[red]stack up failed:[/red] {e}")
        raise typer.Exit(1) from e
    console.print("[green]stack is up[/green]")


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `stack up` started; leave alone what it reused."""
    from stack import manager

    for name, stopped in manager.down(_settings()).items():
        console.print(f"  {name:<11} {'stopped' if stopped else 'not ours / not running'}")


@stack_app.command("status")
def stack_status() -> None:
    """Report each component; exit 1 when any is down."""
    from stack import manager

    table = Table("component", "state", "detail")
    states = manager.status(_settings())
    for name, (state, detail) in states.items():
        table.add_row(name, f"[green]{state}[/green]" if state == "up" else f"[red]{state}[/red]", detail)
    console.print(table)
    if any(state != "up" for state, _ in states.values()):
        raise typer.Exit(1)


@app.command("migrate")
def migrate_cmd() -> None:
    """Prepare external infrastructure: database schema, Kafka topics, MQTT service accounts.

    What `vigil stack up` does for the local stack, for brokers and databases Vigil does not run
    (docker-compose, production). Safe to repeat.
    """
    from stack.kafka import ensure_topics
    from vigil.broker_accounts import ADMIN_USERNAME, BrokerAccounts
    from vigil.broker_secrets import ensure_secrets
    from vigil.storage import StorageError
    from vigil.storage.schema import ensure_database, migrate

    settings = _settings()
    try:
        ensure_database(settings.database_url)
        applied = migrate(settings.database_url, retention_days=settings.retention_days,
                          timescale=settings.timescale)
    except StorageError as e:
        console.print(f"[red]migrate failed:[/red] {e}")
        raise typer.Exit(1) from e
    console.print(f"schema: {', '.join(applied) or 'current'}")
    console.print(f"topics created: {', '.join(ensure_topics(settings)) or 'none, all present'}")
    secrets = ensure_secrets(settings)
    with BrokerAccounts(settings.mqtt_host, settings.mqtt_port, ADMIN_USERNAME, secrets.admin_password) as accounts:
        accounts.ensure_default_deny()
        accounts.ensure_ingest_account(secrets.ingest_password)
    console.print("MQTT service accounts: ready")


@app.command("run")
def run_cmd(
    only: Annotated[str, typer.Option(help="Comma-separated subset of the services")] = ",".join(SERVICES),
    workers: Annotated[int, typer.Option(
        help="Stream workers: they share the telemetry partitions, so more than VIGIL_TELEMETRY_PARTITIONS "
             "leaves the rest idle.", min=1, envvar="VIGIL_STREAMS_WORKERS")] = 1,
    ingest: Annotated[int, typer.Option(
        help="Ingest processes: they share the broker subscription, each under its own VIGIL_INGEST_INSTANCE "
             "(the configured one, then <instance>-2, <instance>-3, ...).", min=1,
        envvar="VIGIL_INGEST_PROCESSES")] = 1,
) -> None:
    """Run the services in the foreground until SIGINT/SIGTERM."""
    from vigil.runner import run_foreground

    settings = _settings()
    configure_logging(settings.log_level)
    if workers > settings.telemetry_partitions:
        console.print(f"[yellow]{workers} stream workers for {settings.telemetry_partitions} telemetry partitions: "
                      f"{workers - settings.telemetry_partitions} will stand idle[/yellow]")
    try:
        run_foreground([n.strip() for n in only.split(",") if n.strip()], {"streams": workers, "ingest": ingest})
    except ValueError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(2) from e


@app.command("demo")
def demo_cmd(
    stay_open: Annotated[bool, typer.Option("--stay-open/--exit", help="Keep the services up afterwards")] = True,
) -> None:
    """Stack up, every service, a simulated fleet with a leak and a tachycardia episode, a summary."""
    from simulators.demo import DEMO_SCENARIOS, run_demo
    from stack import manager
    from vigil.tokens import issue_token

    settings = _settings()
    configure_logging("WARNING")
    console.print("[bold]Vigil demo[/bold]: bringing the local stack up")
    manager.up(settings, report=lambda name, state: console.print(f"  {name:<11} {state}"))
    token = settings.admin_token or issue_token(settings.database_url, "admin", None)
    result = run_demo(settings, token, console=console, stay_open=stay_open)
    if len(result.counts.alerts) < len(DEMO_SCENARIOS):
        console.print(f"[red]expected {len(DEMO_SCENARIOS)} alerts, saw {len(result.counts.alerts)}[/red]")
        raise typer.Exit(1)
    if not (result.answered and result.escalated and result.claim_paid):
        raise typer.Exit(1)


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="admin or care_manager")],
    care_manager: Annotated[str | None, typer.Option("--care-manager", help="care manager id")] = None,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="lifetime: a number and m, h, d or w, e.g. 30d; default never")
    ] = None,
) -> None:
    """Print a new API token (only its hash is stored); its id, for `revoke`, goes to stderr."""
    from vigil.storage import StorageError
    from vigil.timefmt import utc_text
    from vigil.tokens import issue, parse_lifetime

    if role not in ("admin", "care_manager"):
        console.print("[red]--role must be admin or care_manager[/red]")
        raise typer.Exit(2)
    if role == "care_manager" and not care_manager:
        console.print("[red]--care-manager is required for the care_manager role[/red]")
        raise typer.Exit(2)
    try:
        lifetime = parse_lifetime(expires_in) if expires_in is not None else None
    except ValueError as e:
        console.print(f"[red]--expires-in: {e}[/red]")
        raise typer.Exit(2) from e
    database_url = _settings().database_url
    try:
        issued = issue(database_url, role, care_manager, lifetime=lifetime)
    except StorageError as e:
        err_console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    # Only the token on stdout, so `TOKEN=$(vigil token create ...)` keeps working.
    sys.stdout.write(issued.token + "\n")
    expiry = f"expires {utc_text(issued.expires_at.replace(microsecond=0))}" if issued.expires_at else "never expires"
    err_console.print(f"id {issued.id} ({expiry}); revoke with: vigil token revoke {issued.id}")


@token_app.command("revoke")
def token_revoke(
    token_or_id: Annotated[str, typer.Argument(help="the token itself (vgl_...) or its id (tok_...)")],
) -> None:
    """Revoke a token at once: the API refuses it from its next request on."""
    from vigil.storage import StorageError
    from vigil.timefmt import utc_text
    from vigil.tokens import revoke

    database_url = _settings().database_url
    try:
        revoked = revoke(database_url, token_or_id)
    except StorageError as e:
        err_console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    if revoked is None:
        # Never echo the argument: it may be a live secret pasted by mistake.
        err_console.print("[red]no API token has this value or id; `vigil token list` shows the ids[/red]")
        raise typer.Exit(1)
    token_id, at = revoked
    console.print(f"revoked {token_id} (at {utc_text(at)})")


@token_app.command("list")
def token_list() -> None:
    """Every token's id, role, care manager, lifetime and state (never the secret nor its hash)."""
    from vigil.storage import StorageError
    from vigil.timefmt import utc_text
    from vigil.tokens import list_tokens, token_state

    database_url = _settings().database_url
    try:
        rows, now = list_tokens(database_url)
    except StorageError as e:
        err_console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    # Plain columns, whatever the terminal's width: ids are copied from here into `revoke`.
    line = "{:<21} {:<8} {:<13} {:<14} {:<21} {}\n"
    sys.stdout.write(line.format("ID", "STATE", "ROLE", "CARE MANAGER", "CREATED", "EXPIRES"))
    for row in rows:
        created = utc_text(row["created_at"].replace(microsecond=0))
        expires = utc_text(row["expires_at"].replace(microsecond=0)) if row["expires_at"] else "never"
        sys.stdout.write(line.format(row["id"], token_state(row, now), row["role"], row["care_manager_id"] or "-",
                                     created, expires))
