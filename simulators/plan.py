"""The fleet as planned: which devices exist, their ids, and the event-time order their messages fall due."""

from __future__ import annotations

import heapq
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulators.devices import Message, SimulatedDevice
from simulators.scenarios import Injection, Kind

RUN_ID_RE = re.compile(r"^[a-z0-9]{1,24}$")
# 60 samples of a home sensor's 11 metrics stay well inside the 64 KiB payload limit.
MAX_SAMPLES_PER_MESSAGE = 60
MAX_SAMPLE_INTERVAL_S = 300
_ABBREVIATION: dict[Kind, str] = {"wearable": "wb", "home": "home"}


def device_id(run_id: str, kind: Kind, number: int) -> str:
    """`sim-<run>-wb-0001`: the run id keeps fleets of different runs apart in one registry."""
    return f"sim-{run_id}-{_ABBREVIATION[kind]}-{number:04d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetPlan:
    """How many devices of each kind, how often they sample and report, and the incidents to play."""

    run_id: str
    wearables: int = 1
    homes: int = 1
    sample_interval_s: int = 15
    samples_per_message: int = 4
    seed: int = 0
    injections: tuple[Injection, ...] = ()

    def __post_init__(self) -> None:
        if not RUN_ID_RE.match(self.run_id):
            raise ValueError(f"run_id {self.run_id!r} must be 1 to 24 lower-case letters or digits")
        if self.wearables < 0 or self.homes < 0 or self.wearables + self.homes == 0:
            raise ValueError(f"a fleet needs at least one device, not {self.wearables} wearables and "
                             f"{self.homes} homes")
        if not 1 <= self.sample_interval_s <= MAX_SAMPLE_INTERVAL_S:
            raise ValueError(f"sample_interval_s must be 1 to {MAX_SAMPLE_INTERVAL_S}, not {self.sample_interval_s}")
        if not 1 <= self.samples_per_message <= MAX_SAMPLES_PER_MESSAGE:
            raise ValueError(f"samples_per_message must be 1 to {MAX_SAMPLES_PER_MESSAGE}, "
                             f"not {self.samples_per_message}")
        for injection in self.injections:
            count = self.count(injection.scenario.kind)
            if injection.device > count:
                raise ValueError(f"scenario {injection.scenario.name!r} asks for {injection.scenario.kind} "
                                 f"{injection.device}, but the fleet has {count}")

    def count(self, kind: Kind) -> int:
        """How many devices of `kind` the fleet has."""
        return self.wearables if kind == "wearable" else self.homes

    @property
    def message_interval_s(self) -> int:
        """Event seconds between one device's messages: also the `report_interval_s` it registers."""
        return self.sample_interval_s * self.samples_per_message

    def device_ids(self, kind: Kind) -> list[str]:
        """Ids of the fleet's devices of `kind`, numbered from 1."""
        return [device_id(self.run_id, kind, n) for n in range(1, self.count(kind) + 1)]

    def injected_device_id(self, injection: Injection) -> str:
        """The device a scenario plays on, so a caller can look for the alert it raises."""
        return device_id(self.run_id, injection.scenario.kind, injection.device)

    def end_of_scenarios_s(self) -> float:
        """Event seconds after the start by which every scripted scenario has played out."""
        return max((i.offset_s + i.scenario.duration_s for i in self.injections), default=0.0)


class Fleet:
    """Every device of a plan, handing out messages in event-time order as they fall due."""

    def __init__(self, plan: FleetPlan, start: datetime) -> None:
        self.plan = plan
        self.devices: list[SimulatedDevice] = []
        for kind in ("wearable", "home"):
            for number, did in enumerate(plan.device_ids(kind), start=1):
                rng = random.Random(f"{plan.seed}:{kind}:{number}")
                # Each device starts at its own point in the report cycle, so the fleet's load is even.
                phase_s = rng.randrange(plan.message_interval_s)
                self.devices.append(SimulatedDevice.create(
                    device_id=did, kind=kind, rng=rng, sample_interval_s=plan.sample_interval_s,
                    samples_per_message=plan.samples_per_message,
                    first_sample_at=start + timedelta(seconds=phase_s)))
        by_id = {d.device_id: d for d in self.devices}
        for injection in plan.injections:
            by_id[plan.injected_device_id(injection)].inject(
                injection.scenario, start + timedelta(seconds=injection.offset_s))
        self._queue = [(d.due_at, i) for i, d in enumerate(self.devices)]
        heapq.heapify(self._queue)

    def next_due(self) -> datetime:
        """Event time at which the next message can be sent."""
        return self._queue[0][0]

    def due(self, now: datetime, sent_at: datetime, limit: int | None = None) -> list[Message]:
        """Messages whose samples have all been taken by event time `now`, oldest first, at most `limit`."""
        messages: list[Message] = []
        while self._queue[0][0] <= now and (limit is None or len(messages) < limit):
            _, index = self._queue[0]
            device = self.devices[index]
            messages.append(device.next_message(sent_at))
            heapq.heapreplace(self._queue, (device.due_at, index))
        return messages
