"""What /proc says about processes and the machine: resident memory and CPU ticks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from bench.report import CpuUse, cpu_shares, machine_share

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of a process in kB; (None, None) when it is gone or not readable."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None, None
    return values.get("VmRSS"), values.get("VmHWM")


def cpu_ticks(pid: int) -> int | None:
    """User plus system CPU ticks a process has used; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; the fields after its closing one do not.
    fields = stat.rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot, from the first line of /proc/stat."""
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(parts[:8])  # guest time is already counted in user
    idle = parts[3] + parts[4]  # idle + iowait
    return total - idle, total


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def sample(groups: Mapping[str, Callable[[], Iterable[int]]]) -> dict[str, dict[int, int]]:
    """CPU ticks of every process in every named group, resolving the groups' pids now."""
    taken: dict[str, dict[int, int]] = {}
    for name, pids in groups.items():
        ticks = {}
        for pid in pids():
            used = cpu_ticks(pid)
            if used is not None:
                ticks[pid] = used
        taken[name] = ticks
    return taken


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class CpuMeter:
    """CPU used by named groups of processes, phase by phase."""

    def __init__(self, groups: Mapping[str, Callable[[], Iterable[int]]], *, cpus: int) -> None:
        self.groups = groups
        self.cpus = cpus
        self.uses: list[CpuUse] = []

    def phase(self, name: str) -> PhaseCpu:
        return PhaseCpu(self, name)


class PhaseCpu:
    """One phase: `begin`, `add` CPU measured elsewhere (processes gone by the end), `end`."""

    def __init__(self, meter: CpuMeter, name: str) -> None:
        self._meter = meter
        self._name = name
        self._extra: dict[str, float] = {}
        self._start: tuple[float, dict[str, dict[int, int]], tuple[int, int]] | None = None

    def begin(self) -> None:
        self._start = time.monotonic(), sample(self._meter.groups), machine_ticks()

    def add(self, component: str, cpu_s: float) -> None:
        self._extra[component] = self._extra.get(component, 0.0) + cpu_s

    def end(self) -> None:
        if self._start is None:
            raise RuntimeError("end() before begin()")
        started, before, machine_before = self._start
        after, machine_after = sample(self._meter.groups), machine_ticks()
        wall_s = time.monotonic() - started
        shares = cpu_shares(before, after, wall_s=wall_s, ticks_per_s=TICKS_PER_S)
        for component, cpu_s in self._extra.items():
            shares[component] = shares.get(component, 0.0) + 100.0 * cpu_s / wall_s
        self._meter.uses.append(CpuUse(phase=self._name, wall_s=wall_s, shares=shares,
                                   machine=machine_share(machine_before, machine_after, cpus=self._meter.cpus)))
