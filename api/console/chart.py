"""The geometry of an alert's reading chart, drawn by the template as an inline SVG polyline.

Pure: readings in, coordinates and labels out. No chart library, no script: the page is usable
the moment it arrives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

WIDTH, HEIGHT = 640, 220
# Room for the axis labels: left, right, top, bottom.
PAD_L, PAD_R, PAD_T, PAD_B = 44, 12, 12, 26
# More points than the chart has pixels to draw them in only makes the page heavier.
MAX_POINTS = 480
TICK_EVERY = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    """What the template draws; `points` is the polyline's `points` attribute, empty without readings."""

    points: str
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    thresholds: tuple[Tick, ...]
    marker_x: float
    readings: int
    width: int = WIDTH
    height: int = HEIGHT
    left: int = PAD_L
    right: int = WIDTH - PAD_R
    top: int = PAD_T
    bottom: int = HEIGHT - PAD_B


def build_chart(
    readings: Sequence[tuple[datetime, float]],
    *,
    start: datetime,
    end: datetime,
    marker: datetime,
    thresholds: Sequence[float],
    flag: bool,
    tz: str,
) -> Chart:
    """The chart of `readings` (oldest first) between `start` and `end`, a marker line at `marker`.

    A flag (0/1) is drawn as steps, since it holds its value until the next reading.
    """
    span_s = (end - start).total_seconds()

    def x_of(moment: datetime) -> float:
        return round(PAD_L + (WIDTH - PAD_L - PAD_R) * (moment - start).total_seconds() / span_s, 1)

    values = [v for _, v in readings]
    low, high = (0.0, 1.0) if flag else _value_range([*values, *thresholds])

    def y_of(value: float) -> float:
        return round(HEIGHT - PAD_B - (HEIGHT - PAD_T - PAD_B) * (value - low) / (high - low), 1)

    coordinates: list[tuple[float, float]] = []
    for moment, value in _thin(readings):
        if flag and coordinates:
            coordinates.append((x_of(moment), coordinates[-1][1]))
        coordinates.append((x_of(moment), y_of(value)))
    zone = ZoneInfo(tz)
    first_tick = _ceil_to(start, TICK_EVERY)
    x_ticks = []
    moment = first_tick
    while moment <= end:
        x_ticks.append(Tick(x_of(moment), moment.astimezone(zone).strftime("%H:%M")))
        moment += TICK_EVERY
    if flag:
        y_ticks = (Tick(y_of(0), "off"), Tick(y_of(1), "on"))
    else:
        y_ticks = tuple(Tick(y_of(v), f"{v:g}") for v in _nice_ticks(low, high))
    return Chart(
        points=" ".join(f"{x},{y}" for x, y in coordinates),
        y_ticks=y_ticks,
        x_ticks=tuple(x_ticks),
        thresholds=() if flag else tuple(Tick(y_of(t), f"{t:g}") for t in thresholds if low <= t <= high),
        marker_x=x_of(min(max(marker, start), end)),
        readings=len(readings),
    )


def _thin(readings: Sequence[tuple[datetime, float]]) -> list[tuple[datetime, float]]:
    """At most MAX_POINTS points, keeping each bucket's lowest and highest so that no peak is lost."""
    if len(readings) <= MAX_POINTS:
        return list(readings)
    size = math.ceil(len(readings) / (MAX_POINTS // 2))
    kept: list[tuple[datetime, float]] = []
    for i in range(0, len(readings), size):
        bucket = readings[i:i + size]
        lowest = min(bucket, key=lambda r: r[1])
        highest = max(bucket, key=lambda r: r[1])
        kept.extend(sorted({lowest, highest}, key=lambda r: r[0]))
    return kept


def _value_range(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 1.0
    low, high = min(values), max(values)
    if high - low < 1e-9:
        return low - 1, high + 1
    margin = (high - low) * 0.1
    return low - margin, high + margin


def _nice_ticks(low: float, high: float, wanted: int = 4) -> list[float]:
    """Round values (steps of 1, 2 or 5 times a power of ten) inside [low, high]."""
    raw = (high - low) / wanted
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + 1e-9:
        ticks.append(round(value, 6))
        value += step
    return ticks


def _ceil_to(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=moment.tzinfo)
    steps = math.ceil((moment - epoch) / step)
    return epoch + steps * step
