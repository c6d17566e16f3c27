"""`vigil bench --soak SECONDS`: half load for a long time, a line a minute, and whether it stayed flat.

A short run hides what creeps: a consumer that falls a little further behind each minute, memory
that never comes back, latency that grows with a table. The soak holds the load steady and reads,
once a minute, what the pipeline did in that minute: messages stored per second, the stream
workers' lag on `vigil.telemetry`, each service's memory, and publish -> stored latency. `verdict`
(plain data in, reasons out) then says whether each stayed flat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg
from confluent_kafka import Consumer, TopicPartition

from bench.load import Publishers, PublishJob
from bench.procfs import memory_kb
from bench.report import Latency, summarize_latency
from vigil.topics import TELEMETRY

MINUTE_S = 60.0
STREAMS_GROUP = "vigil-streams"
# What "flat" allows: a minute may store this share of the rate less; memory may grow by this share
# (plus a little for a process's first allocations); the last minute's p99 may be this much worse.
THROUGHPUT_SHARE = 0.9
MEMORY_GROWTH = 0.10
MEMORY_SLACK_MB = 20.0
LATENCY_GROWTH = 1.5
LATENCY_SLACK_MS = 250.0
# Tansu keeps every record in memory here (its memory storage): its growth is by design, not a leak.
GROWS_BY_DESIGN = ("tansu",)


@dataclass(frozen=True, slots=True)
class SoakMinute:
    """What the pipeline did in one minute of the soak."""

    minute: int
    stored_per_s: float
    lag: int | None
    rss_mb: Mapping[str, float]
    latency: Latency | None


@dataclass(slots=True)
class SoakResult:
    rate_per_s: float
    seconds: float
    minutes: list[SoakMinute] = field(default_factory=list)
    flat: bool = False
    reasons: list[str] = field(default_factory=list)


def verdict(minutes: Sequence[SoakMinute], *, rate_per_s: float) -> tuple[bool, list[str]]:
    """Whether throughput, lag, memory and latency stayed flat; the reasons they did not.

    The first minute is the baseline (it includes the load's ramp-up, so its own throughput is not judged).
    """
    if len(minutes) < 2:
        return False, ["fewer than two minutes: nothing to compare"]
    first, last, reasons = minutes[0], minutes[-1], []
    for m in minutes[1:]:
        if m.stored_per_s < THROUGHPUT_SHARE * rate_per_s:
            reasons.append(f"minute {m.minute}: stored {m.stored_per_s:,.0f} msg/s of {rate_per_s:,.0f} published")
    if first.lag is not None and last.lag is not None and last.lag > max(2 * first.lag, 2 * rate_per_s):
        reasons.append(f"lag grew from {first.lag:,} to {last.lag:,} records")
    for name, start in first.rss_mb.items():
        end = last.rss_mb.get(name)
        if end is not None and name not in GROWS_BY_DESIGN and end > start * (1 + MEMORY_GROWTH) + MEMORY_SLACK_MB:
            reasons.append(f"{name} memory grew from {start:,.0f} MB to {end:,.0f} MB")
    if first.latency and last.latency and \
            last.latency.p99_ms > max(LATENCY_GROWTH * first.latency.p99_ms, first.latency.p99_ms + LATENCY_SLACK_MS):
        reasons.append(f"p99 publish -> stored grew from {first.latency.p99_ms:,.0f} ms to "
                       f"{last.latency.p99_ms:,.0f} ms")
    return not reasons, reasons


def consumer_lag(bootstrap: str, partitions: int) -> int | None:
    """Records on `vigil.telemetry` not yet committed by the stream workers' group; None if unreadable."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": STREAMS_GROUP, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(TELEMETRY, p) for p in range(partitions)], timeout=10)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    except Exception:  # a figure the soak cannot read is shown as missing; the soak goes on
        return None
    finally:
        consumer.close()


def _minute_of_rows(conn: psycopg.Connection, pattern: str, since: float, until: float) -> tuple[int, Latency | None]:
    rows = conn.execute(
        "SELECT extract(epoch FROM stored_at - sent_at)::float8 * 1000 FROM messages "
        "WHERE device_id LIKE %s AND stored_at > to_timestamp(%s) AND stored_at <= to_timestamp(%s)",
        (pattern, since, until)).fetchall()
    return len(rows), summarize_latency(r[0] for r in rows)


def soak(jobs: Sequence[PublishJob], *, database_url: str, pattern: str, bootstrap: str, partitions: int,
         pids: Callable[[], Mapping[str, int]], rate_per_s: float, seconds: float,
         on_minute: Callable[[SoakMinute], None]) -> SoakResult:
    """Publish `jobs` (paced at `rate_per_s` in all, for `seconds`) and sample the pipeline once a minute."""
    result = SoakResult(rate_per_s=rate_per_s, seconds=seconds)
    publishers = Publishers(jobs)
    try:
        publishers.start()
        started = publishers.go()
        with psycopg.connect(database_url, autocommit=True) as conn:
            since = started
            for _ in range(int(seconds // MINUTE_S)):
                time.sleep(max(0.0, since + MINUTE_S - time.time()))
                until = time.time()
                count, latency = _minute_of_rows(conn, pattern, since, until)
                rss = {name: (memory_kb(pid)[0] or 0) / 1024 for name, pid in pids().items()}
                minute = SoakMinute(minute=len(result.minutes) + 1, stored_per_s=count / (until - since),
                                    lag=consumer_lag(bootstrap, partitions), rss_mb=rss, latency=latency)
                result.minutes.append(minute)
                on_minute(minute)
                since = until
        publishers.results(timeout_s=seconds + 120)
    finally:
        publishers.stop()
    result.flat, result.reasons = verdict(result.minutes, rate_per_s=rate_per_s)
    return result
