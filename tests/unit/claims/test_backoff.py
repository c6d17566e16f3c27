"""The wait before the next delivery try: exponential, capped, with full jitter."""

from __future__ import annotations

import random

import pytest

from vigil.claims.backoff import next_delay_s


@pytest.mark.parametrize(("attempt", "base_s", "cap_s", "ceiling"), [
    (1, 1.0, 600, 1.0),
    (2, 1.0, 600, 2.0),
    (3, 1.0, 600, 4.0),
    (10, 1.0, 600, 512.0),
    (11, 1.0, 600, 600.0),  # 1024 capped
    (4, 2.5, 600, 20.0),
    (5000, 1.0, 600, 600.0),  # any attempt count stays finite
])
def test_the_bounds_are_zero_and_the_capped_exponential(attempt, base_s, cap_s, ceiling):
    assert next_delay_s(attempt, base_s=base_s, cap_s=cap_s, rand=lambda: 0.0) == 0.0
    assert next_delay_s(attempt, base_s=base_s, cap_s=cap_s, rand=lambda: 1.0) == ceiling
    assert next_delay_s(attempt, base_s=base_s, cap_s=cap_s, rand=lambda: 0.5) == ceiling / 2


def test_the_jitter_spreads_below_the_ceiling():
    draws = random.Random(8)
    delays = [next_delay_s(6, cap_s=600, rand=draws.random) for _ in range(200)]
    assert all(0 <= d <= 32 for d in delays)
    assert len(set(delays)) == 200
    assert min(delays) < 8 and max(delays) > 24


@pytest.mark.parametrize("rand", [lambda: -0.5, lambda: 3.0])
def test_a_draw_out_of_range_is_held_to_the_bounds(rand):
    assert 0 <= next_delay_s(3, cap_s=600, rand=rand) <= 4


@pytest.mark.parametrize(("attempt", "base_s", "cap_s"), [(0, 1.0, 600), (-1, 1.0, 600), (1, 0, 600), (1, 1.0, 0)])
def test_nonsense_is_refused(attempt, base_s, cap_s):
    with pytest.raises(ValueError):
        next_delay_s(attempt, base_s=base_s, cap_s=cap_s, rand=lambda: 0.5)
