"""The soak's verdict: flat when throughput, lag, memory and latency hold; each drift named."""

from __future__ import annotations

from bench.report import Latency
from bench.soak import SoakMinute, verdict

RATE = 1_000.0


def _minute(n: int, *, stored: float = RATE, lag: int | None = 200, streams_mb: float = 200.0,
            tansu_mb: float = 500.0, p99_ms: float = 300.0) -> SoakMinute:
    return SoakMinute(minute=n, stored_per_s=stored, lag=lag, rss_mb={"streams": streams_mb, "tansu": tansu_mb},
                      latency=Latency(count=60_000, p50_ms=p99_ms / 3, p95_ms=p99_ms / 1.5, p99_ms=p99_ms,
                                      max_ms=p99_ms * 1.2))


def test_a_steady_soak_is_flat_even_with_tansu_keeping_every_record():
    minutes = [_minute(1, stored=700), *(_minute(n, tansu_mb=500 + 100 * n) for n in range(2, 6))]
    assert verdict(minutes, rate_per_s=RATE) == (True, [])


def test_each_drift_is_named():
    minutes = [_minute(1), _minute(2, stored=850), _minute(3, lag=5_000, streams_mb=260, p99_ms=900)]
    flat, reasons = verdict(minutes, rate_per_s=RATE)
    assert not flat
    assert reasons == ["minute 2: stored 850 msg/s of 1,000 published",
                       "lag grew from 200 to 5,000 records",
                       "streams memory grew from 200 MB to 260 MB",
                       "p99 publish -> stored grew from 300 ms to 900 ms"]


def test_small_wobbles_are_flat():
    minutes = [_minute(1), _minute(2, stored=920, lag=1_900, streams_mb=235, p99_ms=540)]
    assert verdict(minutes, rate_per_s=RATE) == (True, [])


def test_one_minute_is_no_verdict():
    assert verdict([_minute(1)], rate_per_s=RATE) == (False, ["fewer than two minutes: nothing to compare"])
