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

from itertools import accumulate, repeat
from operator import sub
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


def _compact_numbers(values: list[float]) -> orjson.Fragment:
    """The values as a JSON array, whole numbers without their `.0`.

    A busy device buffers 2,000 readings: dropping the `.0` in the bytes orjson writes costs a
    fifth of what converting each value in Python did. In an array of floats a `.0` followed by
    `,` or `]` ends a whole number and nothing else (orjson writes large and small ones with an
    exponent: `1e+20`, `1e-7`).
    """
    return orjson.Fragment(orjson.dumps(values).replace(b".0,", b",").replace(b".0]", b"]"))


def _buffer(buffer: list[Reading]) -> dict[str, list]:
    times: dict[str, list[int]] = {}
    values: dict[str, list[float]] = {}
    for ts, metric, value in buffer:
        metric_times = times.get(metric)
        if metric_times is None:
            metric_times = times[metric] = []
            values[metric] = []
        metric_times.append(ts)
        values[metric].append(value)
    return {metric: [[t[0], *map(sub, t[1:], t)], _compact_numbers(values[metric])]
            for metric, t in times.items()}


def _buffer_back(by_metric: dict[str, list[list]]) -> list[Reading]:
    readings: list[Reading] = []
    for metric, (gaps, values) in by_metric.items():
        if len(gaps) != len(values):
            raise ValueError(f"the buffer of {metric} has {len(gaps)} times and {len(values)} values")
        readings += zip(accumulate(gaps), repeat(metric), map(float, values))
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
    keyed = {int(minute): sum_and_count for minute, sum_and_count in by_minute.items()}
    first = min(keyed)
    span = max(keyed) - first + 1
    if span > _DENSE_FACTOR * len(keyed):
        return by_minute
    sums: list[float] = [0.0] * span
    counts: list[float] = [0.0] * span
    for minute, (total, count) in keyed.items():
        sums[minute - first] = total
        counts[minute - first] = count
    return [first, _compact_numbers(sums), _compact_numbers(counts)]


def _minutes_back(packed: Any) -> dict[str, list]:
    if isinstance(packed, dict):
        return packed
    first, sums, counts = packed
    # Sums are floats and counts whole numbers in `vigil.rules.minute_store`, as here.
    return {str(first + offset): [float(total), int(count)]
            for offset, (total, count) in enumerate(zip(sums, counts, strict=True)) if count}
