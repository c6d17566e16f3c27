"""The fleet bench's "judged on its recovered state" compares what two writes of a state hold, not
their bytes: the worker writes a state judged once compressed and a busy one as it is."""

from __future__ import annotations

import zlib

from bench.fleet_state import held
from vigil.rules import state_codec
from vigil.rules.state import DeviceState


def _state(readings: int) -> DeviceState:
    return DeviceState(watermark_ms=1_000 * readings, settled_ms=0,
                       buffer=[(1_000 * i, "heart_rate", 70.0 + i % 9) for i in range(readings)])


def test_a_compressed_write_holds_as_much_as_the_same_state_written_plain():
    plain = state_codec.encode(_state(200))
    compressed = zlib.compress(plain, 1)
    assert len(compressed) < 0.75 * len(plain)  # their bytes alone would call it a new state
    assert held(compressed) == held(plain)


def test_a_new_state_holds_far_less_than_a_recovered_one():
    assert held(state_codec.encode(_state(1))) < 0.75 * held(zlib.compress(state_codec.encode(_state(200)), 1))
    assert held(None) == 0
