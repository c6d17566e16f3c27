"""The watch that stops a worker whose table recovery has stopped moving (`streams.recovery_watch`)."""

from __future__ import annotations

from types import SimpleNamespace

from streams.metrics import RECOVERY_REMAINING
from streams.recovery_watch import ProgressWatch, check, remaining


def _recovery(left: int, *, recovering: bool = True) -> SimpleNamespace:
    """Faust's `Recovery`, as far as the watch reads it."""
    return SimpleNamespace(in_recovery=recovering, active_remaining_total=lambda: left)


def test_a_recovery_reading_nothing_for_the_tolerance_has_stalled():
    watch = ProgressWatch(tolerance_s=120)
    assert not watch.stalled(40, now=0)
    assert not watch.stalled(40, now=119)
    assert watch.stalled(40, now=120)


def test_any_record_read_restarts_the_count():
    watch = ProgressWatch(tolerance_s=120)
    watch.stalled(40, now=0)
    assert not watch.stalled(39, now=100)
    assert not watch.stalled(39, now=219)
    assert watch.stalled(39, now=220)


def test_nothing_left_or_no_recovery_is_never_a_stall():
    watch = ProgressWatch(tolerance_s=120)
    for now in (0, 200, 400):
        assert not watch.stalled(0, now)
    for now in (500, 700, 900):
        assert not watch.stalled(None, now)
    # A new recovery starts its own count, even with the same number left as an earlier one.
    watch.stalled(40, now=1000)
    watch.stalled(None, now=1010)
    assert not watch.stalled(40, now=1020)
    assert not watch.stalled(40, now=1139)
    assert watch.stalled(40, now=1140)


def test_remaining_is_none_outside_a_recovery():
    assert remaining(_recovery(12)) == 12
    assert remaining(_recovery(12, recovering=False)) is None


def test_check_reports_the_records_left_once_stalled_and_shows_them_as_a_metric():
    watch = ProgressWatch(tolerance_s=60)
    assert check(_recovery(7), watch, now=0) is None
    assert RECOVERY_REMAINING._value.get() == 7
    assert check(_recovery(7), watch, now=60) == 7
    assert check(_recovery(0, recovering=False), watch, now=70) is None
    assert RECOVERY_REMAINING._value.get() == 0


def test_a_recovery_that_cannot_be_read_is_not_taken_for_a_stall():
    def broken() -> int:
        raise KeyError("tp revoked meanwhile")

    watch = ProgressWatch(tolerance_s=0)
    assert check(SimpleNamespace(in_recovery=True, active_remaining_total=broken), watch, now=0) is None
