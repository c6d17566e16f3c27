"""`device_offline` judged on a fixed clock: silence, restarts of Vigil, clears, disabled devices."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from vigil.events import alert_id
from vigil.rules.offline import Device, OfflineAlert, judge_offline, pipeline_live_since

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=30)  # registration, and the start of an unbroken pipeline run
INTERVAL_S = 300
THRESHOLD = timedelta(seconds=3 * INTERVAL_S)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def device(device_id: str = "d-1", *, last: datetime | None, enabled: bool = True,
           created_at: datetime = LONG_AGO, interval_s: int = INTERVAL_S) -> Device:
    return Device(device_id=device_id, member_id="m-1", report_interval_s=interval_s, enabled=enabled,
                  created_at=created_at, last_message_at=last)


def open_alert(silent_since: datetime, *, device_id: str = "d-1", is_open: bool = True) -> OfflineAlert:
    triggered = silent_since + THRESHOLD
    return OfflineAlert(alert_id=alert_id(device_id, "device_offline", ms(triggered)), member_id="m-1",
                        triggered_at=triggered, silent_since=silent_since, open=is_open)


@pytest.mark.parametrize(
    ("silent_for", "raised"),
    [
        (THRESHOLD - timedelta(seconds=1), False),
        (THRESHOLD, False),  # "more than" 3 intervals
        (THRESHOLD + timedelta(seconds=1), True),
    ],
)
def test_silence_raises_just_past_three_intervals(silent_for, raised):
    last = NOW - silent_for
    changes = judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=last)], alerts={})
    if not raised:
        assert changes == []
        return
    [change] = changes
    assert change.change == "raised" and change.type == "device_offline" and change.severity == "medium"
    assert change.triggered_at_ms == ms(last + THRESHOLD)
    assert change.alert_id == alert_id("d-1", "device_offline", ms(last + THRESHOLD))
    assert change.detected_at_ms == ms(NOW)
    assert (change.member_id, change.device_id) == ("m-1", "d-1")
    assert change.evidence == {
        "rule": "device_offline",
        "parameters": {"silent_intervals": 3, "report_interval_s": 300, "threshold_s": 900},
        "last_message_at": "2024-03-01T11:44:59.000000Z",
        "silent_since": "2024-03-01T11:44:59.000000Z",
        "pipeline_live_since": "2024-01-31T12:00:00.000000Z",
    }


def test_after_a_restart_silence_counts_only_from_when_the_pipeline_is_live_again():
    # Every device was last heard an hour ago, before Vigil went down; Vigil is back since 10 minutes.
    fleet = [device(f"d-{n}", last=NOW - timedelta(hours=1)) for n in range(3)]
    back = NOW - timedelta(minutes=10)
    assert judge_offline(NOW, live_since=back, devices=fleet, alerts={}) == []
    # 15 minutes and a second of being live, and the devices still silent: now they count.
    later = back + THRESHOLD + timedelta(seconds=1)
    changes = judge_offline(later, live_since=back, devices=fleet, alerts={})
    assert [c.device_id for c in changes] == ["d-0", "d-1", "d-2"]
    assert {c.triggered_at_ms for c in changes} == {ms(back + THRESHOLD)}
    assert changes[0].evidence["silent_since"] == changes[0].evidence["pipeline_live_since"]


def test_no_live_pipeline_means_no_device_is_judged_silent():
    fleet = [device(last=NOW - timedelta(days=1))]
    assert judge_offline(NOW, live_since=None, devices=fleet, alerts={}) == []


def test_a_whole_quiet_fleet_raises_one_alert_each_while_the_pipeline_is_live():
    fleet = [device(f"d-{n}", last=NOW - timedelta(minutes=20 + n)) for n in range(5)]
    changes = judge_offline(NOW, live_since=LONG_AGO, devices=fleet, alerts={})
    assert [(c.device_id, c.change) for c in changes] == [(f"d-{n}", "raised") for n in range(5)]
    assert len({c.alert_id for c in changes}) == 5


def test_a_newer_message_clears_the_open_alert_at_that_message():
    silent_since = NOW - timedelta(hours=2)
    alert = open_alert(silent_since)
    back = NOW - timedelta(seconds=20)
    [change] = judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=back)], alerts={"d-1": alert})
    assert change.change == "cleared" and change.alert_id == alert.alert_id
    assert change.cleared_at_ms == ms(back)
    assert change.triggered_at_ms == ms(alert.triggered_at)


@pytest.mark.parametrize("live_since", [LONG_AGO, None])
def test_an_open_alert_with_no_newer_message_stays_open_and_is_not_raised_again(live_since):
    silent_since = NOW - timedelta(hours=2)
    alerts = {"d-1": open_alert(silent_since)}
    assert judge_offline(NOW, live_since=live_since, devices=[device(last=silent_since)], alerts=alerts) == []


def test_clears_do_not_wait_for_a_live_pipeline():
    alerts = {"d-1": open_alert(NOW - timedelta(hours=2))}
    [change] = judge_offline(NOW, live_since=None, devices=[device(last=NOW - timedelta(seconds=5))], alerts=alerts)
    assert change.change == "cleared"


def test_an_alert_without_recorded_silence_start_clears_on_a_message_after_it():
    alert = replace(open_alert(NOW - timedelta(hours=2)), silent_since=None)
    stale = device(last=NOW - timedelta(hours=2))
    assert judge_offline(NOW, live_since=LONG_AGO, devices=[stale], alerts={"d-1": alert}) == []
    [change] = judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=NOW)], alerts={"d-1": alert})
    assert change.change == "cleared"


def test_a_device_heard_briefly_then_silent_again_clears_and_raises_a_new_episode():
    old = open_alert(NOW - timedelta(hours=2))
    heard = NOW - THRESHOLD - timedelta(minutes=1)
    changes = judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=heard)], alerts={"d-1": old})
    assert [c.change for c in changes] == ["cleared", "raised"]
    assert changes[0].alert_id == old.alert_id
    assert changes[1].alert_id != old.alert_id and changes[1].triggered_at_ms == ms(heard + THRESHOLD)


def test_an_episode_a_person_resolved_is_not_raised_again_while_the_silence_lasts():
    silent_since = NOW - timedelta(hours=2)
    resolved = open_alert(silent_since, is_open=False)
    assert judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=silent_since)],
                         alerts={"d-1": resolved}) == []
    # A new silence after a later message is a new episode.
    again = NOW - timedelta(hours=1)
    [change] = judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=again)], alerts={"d-1": resolved})
    assert change.change == "raised" and change.alert_id != resolved.alert_id


def test_a_disabled_device_never_raises():
    quiet = device(last=NOW - timedelta(days=2), enabled=False)
    assert judge_offline(NOW, live_since=LONG_AGO, devices=[quiet], alerts={}) == []


@pytest.mark.parametrize(
    ("registered_ago", "raised"),
    [(THRESHOLD - timedelta(seconds=1), False), (THRESHOLD + timedelta(seconds=1), True)],
)
def test_a_device_never_heard_counts_its_silence_from_registration(registered_ago, raised):
    created = NOW - registered_ago
    changes = judge_offline(NOW, live_since=LONG_AGO, devices=[device(last=None, created_at=created)], alerts={})
    assert [c.triggered_at_ms for c in changes] == ([ms(created + THRESHOLD)] if raised else [])
    if raised:
        assert changes[0].evidence["last_message_at"] is None


def test_the_threshold_follows_each_devices_interval():
    fast = device("fast", last=NOW - timedelta(seconds=16), interval_s=5)
    slow = device("slow", last=NOW - timedelta(seconds=16), interval_s=60)
    changes = judge_offline(NOW, live_since=LONG_AGO, devices=[fast, slow], alerts={})
    assert [c.device_id for c in changes] == ["fast"]


def test_judging_the_same_rows_twice_gives_the_same_events():
    fleet = [device(f"d-{n}", last=NOW - timedelta(hours=n + 1)) for n in range(3)]
    first = judge_offline(NOW, live_since=LONG_AGO, devices=fleet, alerts={})
    assert first == judge_offline(NOW, live_since=LONG_AGO, devices=fleet, alerts={})


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([], None),
        ([(LONG_AGO, NOW - timedelta(seconds=5))], LONG_AGO),
        ([(LONG_AGO, NOW - timedelta(seconds=30))], LONG_AGO),
        ([(LONG_AGO, NOW - timedelta(seconds=31))], None),  # its last heartbeat is too old: down now
        # Two ingest instances: the earliest live run counts; a dead one does not.
        ([(LONG_AGO, NOW - timedelta(minutes=5)), (NOW - timedelta(minutes=2), NOW)], NOW - timedelta(minutes=2)),
        ([(NOW - timedelta(hours=1), NOW), (NOW - timedelta(minutes=2), NOW)], NOW - timedelta(hours=1)),
    ],
)
def test_pipeline_live_since(runs, expected):
    assert pipeline_live_since(runs, NOW, max_gap_s=30) == expected
