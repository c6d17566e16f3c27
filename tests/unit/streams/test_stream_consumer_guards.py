"""The stream worker's guards around Faust's consumer: stream partitions resume only after the
seek, and a commit stuck behind a skipped record is noticed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams.commit_watch import HoleWatch, holes
from streams.faust_fixes import _resume_partitions_last


class _Consumer:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def resume_partitions(self, partitions) -> None:
        self.calls.append(("resume", partitions))


def _step(calls: list, *, fail: bool = False):
    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        self.app.consumer.resume_partitions({"telemetry-0"})
        calls.append("seek")
        if fail:
            raise RuntimeError("rebalance again")
        calls.append("flow resumed, queues emptied")

    return _resume_partitions_last(on_recovery_completed)


def test_stream_partitions_resume_after_the_seek_and_the_emptying():
    calls: list = []
    recovery = SimpleNamespace(app=SimpleNamespace(consumer=_Consumer(calls)))
    asyncio.run(_step(calls)(recovery, 1))
    assert calls == ["seek", "flow resumed, queues emptied", ("resume", {"telemetry-0"})]
    # The consumer's own method is back in place afterwards.
    recovery.app.consumer.resume_partitions({"telemetry-1"})
    assert calls[-1] == ("resume", {"telemetry-1"})


def test_a_step_cut_short_leaves_the_partitions_paused():
    calls: list = []
    recovery = SimpleNamespace(app=SimpleNamespace(consumer=_Consumer(calls)))
    with pytest.raises(RuntimeError):
        asyncio.run(_step(calls, fail=True)(recovery, 1))
    assert calls == ["seek"]
    assert "resume_partitions" not in vars(recovery.app.consumer)


def test_holes_are_partitions_whose_next_offset_is_missing():
    acked = {"a": [5, 6, 7], "b": [10, 11], "c": [], "d": [3]}
    committed = {"a": 5, "b": 9, "c": 2, "d": None}
    assert holes(acked, committed) == {"b": 9}


def test_a_hole_at_one_offset_must_outlive_the_tolerance_to_stall():
    watch = HoleWatch(tolerance_s=120)
    assert watch.stalled({"b": 9}, now=100.0) == set()
    assert watch.stalled({"b": 9}, now=219.0) == set()
    assert watch.stalled({"b": 9}, now=220.0) == {"b"}


def test_holes_of_commits_in_progress_do_not_add_up():
    # Under load every check may catch a commit half done, each time at a later offset.
    watch = HoleWatch(tolerance_s=120)
    for i, now in enumerate(range(100, 400, 10)):
        assert watch.stalled({"b": 1000 + 50 * i}, now=float(now)) == set()


def test_a_hole_that_closes_starts_the_clock_again():
    watch = HoleWatch(tolerance_s=120)
    watch.stalled({"b": 9}, now=100.0)
    watch.stalled({}, now=130.0)
    assert watch.stalled({"b": 9}, now=240.0) == set()
    assert watch.stalled({"b": 9}, now=359.0) == set()
    assert watch.stalled({"b": 9}, now=360.0) == {"b"}
