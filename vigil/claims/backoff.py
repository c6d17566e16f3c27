"""How long a claim delivery or a notice waits before its next try: exponential backoff with full jitter.

Hand-written rather than tenacity's `wait_random_exponential`: the attempt count lives in PostgreSQL
across restarts and workers, and tenacity's waits need a live `RetryCallState` of one process's loop.
Full jitter (a uniform draw below the exponential ceiling) keeps many claims that failed together
against one insurer outage from all coming back at the same instant.
"""

from __future__ import annotations

from collections.abc import Callable

# 2**62 s is beyond any cap; clamping the exponent keeps the float arithmetic finite for any attempt count.
_MAX_EXPONENT = 62


def next_delay_s(attempt: int, *, base_s: float = 1.0, cap_s: float, rand: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt number `attempt` (1 for the first): `rand()` (in [0, 1]) times
    min(`cap_s`, `base_s` x 2^(attempt - 1)).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, not {attempt!r}")
    if base_s <= 0 or cap_s <= 0:
        raise ValueError(f"base_s and cap_s must be positive, not {base_s!r} and {cap_s!r}")
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return ceiling * min(max(rand(), 0.0), 1.0)
