"""The bare-Faust ceiling: how fast a Faust agent that does nothing reads the bench topic.

It is the stream worker without Vigil's work in it: the same faust-streaming release with the same
corrections, the same consumer settings, event loop and `take()` batching, but a body that only
counts. The worker's own rate is bounded by this, so the two side by side say how much of the
worker's cost is Faust's and how much is ours.

Run as a child process (`python -m bench.bare_faust --expected N`): a Faust worker owns its event
loop and signal handlers, and its CPU time is then its own to read. It prints one JSON line.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
import uuid

from bench.report import Ceiling
from vigil.settings import Settings

# Long enough for a group join and the whole topic; the child exits on its own once it has read it.
TIMEOUT_S = 180


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _main(expected: int, topic: str) -> None:
    import faust
    import mode.loop
    from faust import Worker

    from streams import faust_fixes
    from streams.app import BATCH, BATCH_WAIT_S, CONSUMING
    from vigil.settings import get_settings

    mode.loop.use("uvloop")  # as the stream worker
    faust_fixes.apply()
    settings = get_settings()
    app = faust.App(f"vigil-bench-bare-{uuid.uuid4().hex[:8]}", broker=settings.kafka_url,
                    datadir=f"/tmp/vigil-bench-bare-{os.getpid()}", store="memory://", **CONSUMING)
    source = app.topic(topic, value_serializer="raw")
    # The clock starts when the first batch is in (the group join is not Faust's per-record cost),
    # so the first batch's records are read but not counted.
    seen = {"read": 0, "untimed": 0, "first": 0.0, "cpu_first": 0.0}

    @app.agent(source)
    async def count(stream):
        async for values in stream.take(BATCH, within=BATCH_WAIT_S):
            if not seen["read"]:
                seen["first"], seen["cpu_first"], seen["untimed"] = time.perf_counter(), _cpu_s(), len(values)
            seen["read"] += len(values)
            if seen["read"] >= expected:
                seconds, cpu = time.perf_counter() - seen["first"], _cpu_s() - seen["cpu_first"]
                timed = seen["read"] - seen["untimed"]
                # Straight to the file descriptor: the worker sends print() to its log.
                os.write(1, json.dumps({"count": timed, "seconds": seconds, "cpu_s": cpu}).encode() + b"\n")
                os._exit(0)  # a worker's orderly stop takes seconds and measures nothing

    logging.getLogger("faust").setLevel(logging.WARNING)
    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


def bare_faust(settings: Settings, *, topic: str, expected: int) -> Ceiling:
    """Records/s and CPU per record of a do-nothing Faust agent reading `topic` from its start."""
    env = {**os.environ, "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    try:
        done = subprocess.run([sys.executable, "-m", "bench.bare_faust", str(expected), topic], env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Ceiling(stage="bare Faust agent", measure="take() batches, no work", count=0, seconds=0.0,
                       unit="records", note=f"did not read {expected:,} records in {TIMEOUT_S} s")
    # The worker's spinner may write terminal codes ahead of the line.
    lines = [line[line.index('{"count"'):] for line in done.stdout.splitlines() if '{"count"' in line]
    if done.returncode != 0 or not lines:
        return Ceiling(stage="bare Faust agent", measure="take() batches, no work", count=0, seconds=0.0,
                       unit="records", note=f"failed: {(done.stderr or done.stdout).strip()[-300:]}")
    figures = json.loads(lines[-1])
    per_record_ms = 1000 * figures["cpu_s"] / max(figures["count"], 1)
    return Ceiling(stage="bare Faust agent", measure="take() batches, no work, as the stream worker",
                   count=figures["count"], seconds=figures["seconds"], unit="records",
                   note=f"{per_record_ms:.3f} ms CPU per record")


if __name__ == "__main__":
    _main(int(sys.argv[1]), sys.argv[2])
