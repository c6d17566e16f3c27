"""The simulator's shell: provision a fleet through the API, then publish its messages on an accelerated clock."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlparse

import httpx

from simulators.clock import AcceleratedClock, Clock
from simulators.plan import Fleet, FleetPlan
from simulators.provisioning import Provisioned, provision
from simulators.publishing import Router

log = logging.getLogger(__name__)

# Longest sleep of the publishing loop, so progress and a stop request are noticed promptly.
_TICK_S = 0.2
_DRAIN_TIMEOUT_S = 15.0
# Most messages made per loop turn, so a large backlog still lets a stop request through.
_BATCH = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """Where a run stands, for a live display."""

    event_time: datetime
    elapsed_s: float
    published: int
    readings: int
    acked: int
    refused: int
    caught_up: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Played:
    """A scripted scenario and where it played, so a demo can look for the alert it should raise."""

    scenario: str
    device_id: str
    member_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetSummary:
    """What a run did, counted on the simulator's side of the broker."""

    run_id: str
    devices: int
    connections: int
    via_gateways: bool
    published: int
    readings: int
    acked: int
    refused: dict[str, int]
    not_queued: int
    elapsed_s: float
    event_start: datetime
    event_end: datetime
    played: tuple[Played, ...]

    @property
    def unanswered(self) -> int:
        """Messages the broker never answered (lost connection, or the run stopped before the PUBACK)."""
        return self.published - self.acked - sum(self.refused.values())


ProgressCallback = Callable[[Progress], None]


def _stop_when(plan: FleetPlan, clock: Clock, *, speed: float, wall_s: float | None) -> Callable[[float], bool]:
    """The run's end: a wall-time budget, else (when accelerated) the replay caught up and every scenario played."""
    if wall_s is not None:
        return lambda elapsed_s: elapsed_s >= wall_s
    if speed == 1:
        return lambda elapsed_s: False
    # One more report interval lets the message carrying a scenario's last samples go out.
    done_at = clock.start + timedelta(seconds=plan.end_of_scenarios_s() + plan.message_interval_s)
    return lambda elapsed_s: clock.caught_up() and clock.now() >= done_at


def publish_fleet(plan: FleetPlan, provisioned: Provisioned, *, mqtt_url: str, span_s: float = 0.0,
                  speed: float = 1.0, wall_s: float | None = None, max_rate: float | None = None,
                  progress: ProgressCallback | None = None, progress_every_s: float = 1.0,
                  stop: threading.Event | None = None, clock: Clock | None = None) -> FleetSummary:
    """Publish a provisioned fleet's messages until the run is over; blocks, calling `progress` as it goes.

    Event time starts `span_s` ago and runs `speed` times faster than the wall clock, never past now.
    The run ends after `wall_s` wall seconds if given; otherwise, when accelerated, once the replay has
    reached now and every scenario has played; at speed 1 only when `stop` is set.
    `max_rate` caps messages per wall second across the fleet.
    """
    clock = clock or AcceleratedClock(span_s=span_s, speed=speed)
    fleet = Fleet(plan, clock.start)
    finished = _stop_when(plan, clock, speed=speed, wall_s=wall_s)
    parsed = urlparse(mqtt_url)
    router = Router(provisioned.links, parsed.hostname or "127.0.0.1", parsed.port or 1883)
    router.start()
    log.info("publishing %d devices over %d connections from %s at %gx", len(fleet.devices), len(router),
             clock.start.isoformat(), speed)

    published = readings = not_queued = 0
    began = last_report = last_refill = time.monotonic()
    tokens = 0.0

    def report(elapsed_s: float) -> None:
        if progress:
            acked, refused = router.tally.snapshot()
            progress(Progress(event_time=clock.now(), elapsed_s=elapsed_s, published=published, readings=readings,
                              acked=acked, refused=sum(refused.values()), caught_up=clock.caught_up()))

    try:
        while not (stop and stop.is_set()):
            now_mono = time.monotonic()
            limit = _BATCH
            if max_rate:
                tokens = min(max(max_rate, 1.0), tokens + (now_mono - last_refill) * max_rate)
                last_refill = now_mono
                limit = min(limit, int(tokens))
            batch = fleet.due(clock.now(), clock.wall_now(), limit)
            tokens -= len(batch)
            for message in batch:
                if router.publish(message):
                    published += 1
                    readings += message.reading_count
                else:
                    not_queued += 1
            elapsed_s = time.monotonic() - began
            if now_mono - last_report >= progress_every_s:
                report(elapsed_s)
                last_report = now_mono
            if finished(elapsed_s):
                break
            lag_s = (fleet.next_due() - clock.now()).total_seconds()
            wait_s = lag_s / (1.0 if clock.caught_up() else speed)
            if max_rate and tokens < 1:
                wait_s = max(wait_s, 1 / max_rate)
            time.sleep(min(max(wait_s, 0.001), _TICK_S))
        router.drain(published, _DRAIN_TIMEOUT_S)
        report(time.monotonic() - began)
    finally:
        router.stop()

    acked, refused = router.tally.snapshot()
    played = tuple(
        Played(scenario=i.scenario.name, device_id=(did := plan.injected_device_id(i)),
               member_id=provisioned.members.get(did, ""),
               starts_at=clock.start + timedelta(seconds=i.offset_s),
               ends_at=clock.start + timedelta(seconds=i.offset_s + i.scenario.duration_s))
        for i in plan.injections)
    return FleetSummary(run_id=plan.run_id, devices=len(fleet.devices), connections=len(router),
                        via_gateways=provisioned.via_gateways, published=published, readings=readings,
                        acked=acked, refused=refused, not_queued=not_queued, elapsed_s=time.monotonic() - began,
                        event_start=clock.start, event_end=clock.now(), played=played)


def api_client(api_url: str, token: str) -> httpx.Client:
    """An HTTP client for Vigil's API, logged in with a bearer token."""
    return httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}, timeout=15.0)


def run_fleet(plan: FleetPlan, *, api_url: str, token: str, mqtt_url: str, care_manager_id: str,
              gateway_size: int | None = None, span_s: float = 0.0, speed: float = 1.0,
              wall_s: float | None = None, max_rate: float | None = None,
              progress: ProgressCallback | None = None, stop: threading.Event | None = None) -> FleetSummary:
    """Register the fleet through the API, then publish it: `vigil simulate` in one call."""
    with api_client(api_url, token) as http:
        provisioned = provision(http, plan, care_manager_id=care_manager_id, gateway_size=gateway_size)
    return publish_fleet(plan, provisioned, mqtt_url=mqtt_url, span_s=span_s, speed=speed, wall_s=wall_s,
                         max_rate=max_rate, progress=progress, stop=stop)
