"""`vigil demo`: the whole product on one machine, driven through two scripted incidents.

Brings the stack up, starts every service, registers a small fleet and its care manager through the
API, replays the last half hour of its telemetry at 60x (a leak in one member's kitchen, tachycardia
at rest for another) and shows what Vigil made of it: stored readings, refusals, alerts, and the
messages that reached people. Every member, contact and the care manager has a channel into a local
inbox (`simulators.inbox`) that prints what arrives; the leak's member answers "I'm OK" through the
one-tap link in their message, the other member does not, and their alert escalates to the care
manager.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import psycopg
from rich.console import Console
from rich.live import Live
from rich.table import Table

from simulators.demo_claims import AnsweringInsurer, ClaimConfirmer, claims_table
from simulators.fleet import FleetSummary, Progress, api_client, publish_fleet
from simulators.inbox import Arrival, Inbox
from simulators.plan import FleetPlan
from simulators.provisioning import MemberExtras, provision
from simulators.scenarios import Injection
from vigil.runner import SERVICES, Supervisor
from vigil.settings import Settings
from vigil.tokens import issue_token

DEMO_SPAN_S = 30 * 60
DEMO_SPEED = 60.0
# Member 1's home leaks; member 2's heart races at rest, still when the replay ends, so that their
# alert is open when the care manager's step falls due.
DEMO_SCENARIOS = ("leak@4m:1", "tachycardia@16m:2")
ANSWERING_MEMBER = 1
# The demo's ladder: the care manager 30 s after the member (5 minutes by default) and the contacts a
# minute after, so that the escalation shows within the demo. Used only when VIGIL_ESCALATION is unset.
DEMO_LADDER = {
    "critical": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 30},
                 {"to": "emergency_contacts", "after_s": 60}],
    "high": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 30}],
}
MEMBER_TIMEZONE = "America/New_York"
CARE_MANAGER_TIMEZONE = "Europe/London"
REPLY_LINK = re.compile(r"https?://\S+/r/[A-Za-z0-9_-]+")
# The ladder's steps plus room for a slow machine.
OUTREACH_WAIT_S = 90
# The leak's claim is built once its alert ends (the member's "I'm OK"), confirmed by the member,
# delivered, accepted and paid: a few seconds each, plus room for a slow machine.
CLAIM_WAIT_S = 90


@dataclass(frozen=True, slots=True)
class Tally:
    """What the database holds for this run's devices."""

    messages: int
    readings: int
    rejected: dict[str, int]
    alerts: list[tuple]


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo saw: the stored counts, and whether the member's answer and the escalation happened."""

    counts: Tally
    answered: bool
    escalated: bool
    claim_paid: bool


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
            "SELECT type, severity, status, device_id, triggered_at, raised_at, id::text FROM alerts "
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
    for kind, severity, status, device, triggered, raised, _ in counts.alerts:
        alerts.add_row(kind, severity, status, device, f"{triggered:%H:%M:%S}", f"{raised:%H:%M:%S}")
    console.print(alerts)
    for played in summary.played:
        console.print(f"  scripted {played.scenario} on {played.device_id}: "
                      f"{played.starts_at:%H:%M:%S}-{played.ends_at:%H:%M:%S} (event time)")


def _member_channels(inbox: Inbox) -> MemberExtras:
    def extras(number: int) -> dict:
        return {
            "timezone": MEMBER_TIMEZONE,
            "outreach_urls": [inbox.url(f"member-{number}")],
            "emergency_contacts": [{"name": f"Sam Contact {number}", "phone": f"+1555010{number:04d}",
                                    "relation": "son", "outreach_url": inbox.url(f"contact-{number}")}],
        }
    return extras


def _show_arrival(console: Console) -> Callable[[Arrival], None]:
    def show(arrival: Arrival) -> None:
        local = datetime.fromtimestamp(arrival.at).strftime("%H:%M:%S")
        console.print(f"[bold cyan]{local} message to {arrival.path.lstrip('/')}[/bold cyan]: {arrival.title}")
        for line in arrival.body.splitlines():
            console.print(f"    {line}", highlight=False, markup=False)
    return show


class Answerer:
    """The answering member: taps "I'm OK" in their first message with a link, a few seconds after it arrives."""

    TAP_AFTER_S = 3.0

    def __init__(self, console: Console) -> None:
        self._console = console
        self._tapped = threading.Event()
        self.answered = False

    def on_arrival(self, arrival: Arrival) -> None:
        found = REPLY_LINK.search(arrival.body)
        if arrival.path != f"/member-{ANSWERING_MEMBER}" or found is None or self._tapped.is_set():
            return
        self._tapped.set()
        threading.Timer(self.TAP_AFTER_S, self._tap, args=(found.group(0),)).start()

    def _tap(self, link: str) -> None:
        try:
            status = httpx.post(link, timeout=10).status_code
        except httpx.HTTPError as e:
            self._console.print(f"[red]member {ANSWERING_MEMBER} could not tap \"I'm OK\": {e}[/red]")
            return
        self.answered = status == 200
        self._console.print(f"[bold green]member {ANSWERING_MEMBER} tapped \"I'm OK\"[/bold green]: HTTP {status}")

    def wait(self, timeout_s: float) -> bool:
        """Whether the member has answered within `timeout_s` (from the start of the wait)."""
        deadline = time.monotonic() + timeout_s
        while not self.answered and time.monotonic() < deadline:
            time.sleep(0.2)
        if not self.answered:
            self._console.print(f"[red]member {ANSWERING_MEMBER} did not get to answer \"I'm OK\"[/red]")
        return self.answered


def _outreach_table(http: httpx.Client, counts: Tally) -> Table:
    table = Table("alert", "step", "to", "what", "status", "at (UTC)", title="Who was told what, and when")
    for kind, _severity, status, *_, alert_id in counts.alerts:
        for row in http.get(f"/api/v1/alerts/{alert_id}/outreach").json():
            at = datetime.fromisoformat(row["at"]).astimezone(ZoneInfo("UTC")) if row.get("at") else None
            table.add_row(f"{kind} ({status})", str(row["step"]), row["to"], row["purpose"],
                          row["status"] + (f": {row['reason']}" if row.get("reason") else ""),
                          f"{at:%H:%M:%S}" if at else "")
    return table


def run_demo(settings: Settings, token: str, *, console: Console, stay_open: bool) -> DemoResult:
    """Run the demo against an already started stack; returns what was stored and what reached people."""
    api_url = f"http://127.0.0.1:{settings.api_port}"
    log_dir = settings.state_dir / "logs"
    show_arrival, answerer = _show_arrival(console), Answerer(console)
    confirmer = ClaimConfirmer(console, f"/member-{ANSWERING_MEMBER}")

    def arrived(arrival: Arrival) -> None:
        show_arrival(arrival)
        answerer.on_arrival(arrival)
        confirmer.on_arrival(arrival)

    inbox = Inbox(on_arrival=arrived).start()
    # The services read these from the environment they inherit.
    os.environ.setdefault("VIGIL_ESCALATION", json.dumps(DEMO_LADDER))
    os.environ.setdefault("VIGIL_PUBLIC_URL", api_url)
    # The prevention tip a few seconds after the answer rather than an hour, so that the demo shows it.
    os.environ.setdefault("VIGIL_TIP_DELAY_S", "5")
    insurer = AnsweringInsurer(console, api_url).start()
    if not os.environ.get("VIGIL_CLAIMS_WEBHOOK_URL"):
        # Claims go to the stand-in insurer unless an operator named a real endpoint.
        os.environ["VIGIL_CLAIMS_WEBHOOK_URL"] = insurer.insurer.url
        os.environ["VIGIL_CLAIMS_WEBHOOK_SECRET"] = insurer.secret
    supervisor = Supervisor(list(SERVICES), log_dir=log_dir)
    supervisor.start()
    # Restarts a service that dies (say, at start-up while a port is still held) until stop().
    threading.Thread(target=supervisor.watch, name="supervisor", daemon=True).start()
    console.print(f"services started; their logs are in {log_dir}/")
    try:
        with console.status("starting ingest, stream worker, API and scheduler"):
            _wait_healthy(api_url)
        plan = FleetPlan(run_id=f"demo{uuid.uuid4().hex[:4]}", wearables=3, homes=3, seed=7,
                         injections=tuple(Injection.parse(s) for s in DEMO_SCENARIOS))
        care_manager = f"cm-{plan.run_id}"
        with api_client(api_url, token) as http:
            http.post("/api/v1/care_managers", json={
                "id": care_manager, "name": "Dana Reyes", "email": "dana@example.org",
                "phone": "+15550100999", "timezone": CARE_MANAGER_TIMEZONE,
                "outreach_urls": [inbox.url("care-manager")]}).raise_for_status()
            provisioned = provision(http, plan, care_manager_id=care_manager,
                                    member_extras=_member_channels(inbox))
        console.print(f"registered care manager {care_manager}, {plan.wearables} wearables and {plan.homes} "
                      f"home hubs for {len(set(provisioned.members.values()))} members; their messages go to "
                      f"a local inbox on port {inbox.port}")
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
        answered = answerer.wait(OUTREACH_WAIT_S)
        # Member names end in their number (`simulators.provisioning.member_body`).
        silent, answering = f"-{2:04d}", f"-{ANSWERING_MEMBER:04d}"
        escalated = inbox.wait_for(lambda a: a.path == "/care-manager" and silent in a.title,
                                   OUTREACH_WAIT_S) is not None
        if not escalated:
            console.print("[red]the care manager was not told of the unanswered alert[/red]")
        if any(a.path == "/care-manager" and answering in a.title for a in inbox.arrivals):
            console.print("[red]the care manager was told of an alert the member had answered[/red]")
            answered = False
        claim_paid = insurer.wait_paid(CLAIM_WAIT_S)
        if not claim_paid:
            console.print("[red]the leak's claim did not reach payment[/red]")
        counts = tally(settings.database_url, prefix)
        _summary(console, summary, counts)
        with api_client(api_url, token) as http:
            console.print(_outreach_table(http, counts))
            console.print(claims_table(http, sorted(set(provisioned.members.values()))))
        console_token = issue_token(settings.database_url, "care_manager", care_manager)
        console.print(f"\nCare-manager console: {api_url}/  (sign in as {care_manager} with the token "
                      f"{console_token})")
        if stay_open:
            console.print(f"API: {api_url}/api/v1  (try: curl -H 'Authorization: Bearer {token}' "
                          f"{api_url}/api/v1/alerts)\nPress Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        return DemoResult(counts, answered, escalated, claim_paid)
    finally:
        with console.status("stopping services"):
            supervisor.stop()
        inbox.stop()
        insurer.stop()
