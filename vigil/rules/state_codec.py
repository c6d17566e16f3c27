"""A device's state as bytes for the stream worker's changelog: compact, and exact on the way back.

The state's own dict form repeats each metric's name in every buffered reading and writes every
minute aggregate under its own text key; at realistic rates that made a wearable's state 2-8 KB,
most of it the buffer. Here, in format 2:

- the buffer is grouped by metric, each metric's times as gaps from the previous reading in
  milliseconds, values as they are (whole numbers without `.0`);
- each metric's per-minute sums and counts are two arrays from its first minute on (a minute
  without readings has count 0 and is left out again on reading), in the checkpoint and the head.

Decoding gives back exactly the state that was encoded (`decode(encode(s)) == s`), so judging
goes on as if the state had never left memory. Format 1 (the dict form, written by the table's
JSON codec before) is still read.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigil.rules.state import DeviceState, Reading

FORMAT = 2
# A metric's minutes are written as arrays only while the span they cover is at most this many
# times their number (always, for the trimmed windows the rules keep); otherwise as pairs.
_DENSE_FACTOR = 4


def encode(state: DeviceState) -> bytes:
    return orjson.dumps({
        "v": FORMAT,
        "w": state.watermark_ms,
        "s": state.settled_ms,
        "c": _rules_state(state.checkpoint),
        "b": _buffer(state.buffer),
        "a": state.announced,
        "t": state.told,
        "r": state.rules_digest,
        "h": None if state.head is None else _rules_state(state.head),
    })


def decode(raw: bytes | None) -> DeviceState:
    """The state `encode` wrote, or one in format 1; None or empty: a new state."""
    if not raw:
        return DeviceState()
    data = orjson.loads(raw)
    if data.get("v") != FORMAT:
        return DeviceState.from_dict(data)
    return DeviceState(
        watermark_ms=data["w"],
        settled_ms=data["s"],
        checkpoint=_rules_state_back(data["c"]),
        buffer=_buffer_back(data["b"]),
        announced=data["a"],
        told=data["t"],
        rules_digest=data["r"],
        head=None if data["h"] is None else _rules_state_back(data["h"]),
    )


def _compact_number(value: float) -> float | int:
    """A whole number without its `.0`; read back as a float where a float was written."""
    value = float(value)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _buffer(buffer: list[Reading]) -> dict[str, list[list]]:
    by_metric: dict[str, list[list]] = {}
    last: dict[str, int] = {}
    for ts, metric, value in buffer:
        columns = by_metric.get(metric)
        if columns is None:
            columns = by_metric[metric] = [[], []]
            last[metric] = 0
        columns[0].append(ts - last[metric])
        columns[1].append(_compact_number(value))
        last[metric] = ts
    return by_metric


def _buffer_back(by_metric: dict[str, list[list]]) -> list[Reading]:
    readings: list[Reading] = []
    for metric, (gaps, values) in by_metric.items():
        ts = 0
        for gap, value in zip(gaps, values, strict=True):
            ts += gap
            readings.append((ts, metric, float(value)))
    readings.sort()  # the buffer is kept in (time, metric, value) order
    return readings


def _rules_state(state: dict) -> dict:
    """A checkpoint or head (`vigil.rules.replay` shape) with its minute buckets as arrays."""
    return _with_buckets(state, _minutes)


def _rules_state_back(state: dict) -> dict:
    return _with_buckets(state, _minutes_back)


def _with_buckets(state: dict, convert: Any) -> dict:
    """`state` with each metric's minute buckets passed through `convert`."""
    minutes = state.get("minutes")
    if not minutes:
        return state
    buckets = {metric: convert(packed) for metric, packed in minutes["buckets"].items()}
    return {**state, "minutes": {"buckets": buckets, "judged_through": minutes["judged_through"]}}


def _minutes(by_minute: dict[str, list]) -> Any:
    if not by_minute:
        return {}
    minutes = sorted(int(m) for m in by_minute)
    first, span = minutes[0], minutes[-1] - minutes[0] + 1
    if span > _DENSE_FACTOR * len(minutes):
        return by_minute
    sums: list[float | int] = [0] * span
    counts: list[float | int] = [0] * span
    for minute in minutes:
        total, count = by_minute[str(minute)]
        sums[minute - first] = _compact_number(float(total))
        counts[minute - first] = _compact_number(float(count))
    return [first, sums, counts]


def _minutes_back(packed: Any) -> dict[str, list]:
    if isinstance(packed, dict):
        return packed
    first, sums, counts = packed
    # Sums are floats and counts whole numbers in `vigil.rules.minute_store`, as here.
    return {str(first + offset): [float(total), int(count)]
            for offset, (total, count) in enumerate(zip(sums, counts, strict=True)) if count}
