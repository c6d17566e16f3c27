"""The evidence package: its window, its minute aggregates, the handler's checks, and canonical bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.unit.claims.given import T0, at, fall, home_device, leak, wearable
from vigil.claims import evidence
from vigil.claims.evidence import (
    consistency,
    digest,
    encode,
    evidence_package,
    evidence_window,
    last_detected,
    loss_end,
    minute_aggregates,
)
from vigil.claims.facts import OutreachRecord, Reading

LEAK = leak(25)  # wet from minute 0 to 25, the alert cleared at 30:10


def reading(moment: datetime, metric: str, value: float, seq: int = 0) -> Reading:
    return Reading(ts=moment, metric=metric, value=value, seq=seq)


def seconds(*offsets: float, metric: str = "water_leak", value: float = 0) -> list[Reading]:
    """Readings at these seconds of the story (negative: before the loss at minute 0)."""
    return [reading(at(0, s), metric, value, i) for i, s in enumerate(offsets)]


@pytest.mark.parametrize(("cleared_at", "built_at", "window"), [
    # Half an hour before the loss, ten minutes after the clear.
    (at(30), at(60), (at(-30), at(40))),
    # Built before those ten minutes were over: up to the build.
    (at(30), at(35), (at(-30), at(35))),
    # Not cleared (or no alert on record): up to the build.
    (None, at(45), (at(-30), at(45))),
])
def test_evidence_window(cleared_at, built_at, window):
    alert = replace(LEAK.alert, cleared_at=cleared_at)

    assert evidence_window(LEAK.incident, alert, built_at) == window


def test_evidence_window_without_an_alert_row():
    assert evidence_window(LEAK.incident, None, at(45)) == (at(-30), at(45))


def test_minute_aggregates_are_exact_per_minute_and_metric():
    readings = [
        reading(at(1, 50), "heart_rate", 90),
        reading(at(0, 5), "heart_rate", 70),
        reading(at(0, 35), "heart_rate", 80.5),
        reading(at(0, 59.999), "heart_rate", 61),
        reading(at(0, 10), "spo2", 97),
        reading(at(0, 40), "spo2", 94),
        reading(at(-1, 0), "heart_rate", 66),
    ]

    assert minute_aggregates(readings) == [
        {"minute": "2026-11-22T01:59:00Z", "metric": "heart_rate", "count": 1, "min": 66, "max": 66, "mean": 66.0},
        {"minute": "2026-11-22T02:00:00Z", "metric": "heart_rate", "count": 3, "min": 61, "max": 80.5,
         "mean": 70.5},
        {"minute": "2026-11-22T02:00:00Z", "metric": "spo2", "count": 2, "min": 94, "max": 97, "mean": 95.5},
        {"minute": "2026-11-22T02:01:00Z", "metric": "heart_rate", "count": 1, "min": 90, "max": 90, "mean": 90.0},
    ]


def test_minute_aggregates_of_nothing():
    assert minute_aggregates([]) == []


def test_minute_aggregates_of_the_leak_count_every_reading_once():
    minutes = minute_aggregates(LEAK.readings)

    assert sum(m["count"] for m in minutes) == len(LEAK.readings)
    wet = [m for m in minutes if m["max"] == 1]
    assert (wet[0]["minute"], wet[-1]["minute"]) == ("2026-11-22T02:00:00Z", "2026-11-22T02:25:00Z")
    assert all(m["count"] == 6 and m["mean"] == 1.0 for m in wet[:-1])
    # Minute 25: wet at 25:00, dry from 25:10.
    assert (wet[-1]["count"], wet[-1]["min"], wet[-1]["mean"]) == (6, 0, 1 / 6)


HOME = home_device(report_interval_s=60)  # a silence of 150 s is still ordinary
STEADY = seconds(*range(-1800, 0, 60))


@pytest.mark.parametrize(("device", "readings", "continuous", "largest_gap_s", "before"), [
    pytest.param(HOME, STEADY, True, 60.0, 30, id="every minute up to the loss"),
    pytest.param(HOME, seconds(*range(-1800, -900, 60)), False, 960.0, 15, id="a gap hides the onset"),
    pytest.param(HOME, [r for r in STEADY if not -1200 < (r.ts - T0).total_seconds() < -900], False, 300.0, 26,
                 id="a gap in the lookback"),
    pytest.param(HOME, seconds(-1800, -1650, -1500, -1350, -1200, -1050, -900, -750, -600, -450, -300, -150),
                 True, 150.0, 12, id="gaps of exactly the allowed 2.5 intervals"),
    pytest.param(HOME, seconds(-1700, *range(-1600, 0, 60)), True, 100.0, 28,
                 id="the first reading comes 100 s into the lookback"),
    pytest.param(HOME, [], False, None, 0, id="no readings at all"),
    pytest.param(HOME, seconds(0, 60, 120), False, None, 0, id="readings only from the loss on"),
    pytest.param(HOME, seconds(-4000, -3000, -10), False, 1790.0, 1, id="readings before the lookback do not count"),
    pytest.param(replace(HOME, registered_at=at(-5)), seconds(-300, -240, -180, -120, -60), True, 60.0, 5,
                 id="registered 5 minutes before the loss and reporting since"),
    pytest.param(replace(HOME, report_interval_s=1), seconds(*range(-1800, 0, 120)), True, 120.0, 15,
                 id="never less than two minutes allowed"),
])
def test_continuity_before_the_loss(device, readings, continuous, largest_gap_s, before):
    checks = consistency(LEAK.incident, device, readings)

    assert (checks["readings_continuous"], checks["largest_gap_s"], checks["readings_before_loss"]) == (
        continuous, largest_gap_s, before)
    assert checks["allowed_gap_s"] == max(2.5 * device.report_interval_s, 120)


@pytest.mark.parametrize(("registered_at", "before_loss"), [
    (T0 - timedelta(days=30), True),
    (T0, True),  # registered the moment the loss began: its first readings show the onset
    (T0 + timedelta(seconds=1), False),
    (at(45), False),
])
def test_registered_before_the_loss(registered_at, before_loss):
    checks = consistency(LEAK.incident, replace(HOME, registered_at=registered_at), STEADY)

    assert checks["device_registered_before_loss"] is before_loss
    assert checks["device_registered_at"] == registered_at.isoformat().replace("+00:00", "Z")


FALL = fall()  # the fall is at minute 1


@pytest.mark.parametrize(("worn", "expected"), [
    pytest.param([(-60, 1), (0, 1), (60, 1)], True, id="worn all along"),
    pytest.param([(-60, 1), (120, 0)], False, id="taken off 2 minutes after the fall"),
    pytest.param([(-300, 0), (0, 1)], False, id="off 5 minutes before the fall"),
    pytest.param([(-301, 0), (0, 1)], True, id="off more than 5 minutes before: not near the fall"),
    pytest.param([(-400, 1), (400, 1)], None, id="no flag within 5 minutes"),
    pytest.param([], None, id="no flag at all"),
])
def test_a_wearable_worn_near_the_fall(worn, expected):
    readings = [reading(at(1, s), "worn", v) for s, v in worn] + [reading(at(1), "heart_rate", 80)]

    assert consistency(FALL.incident, wearable(), readings)["wearable_worn"] is expected


def test_a_home_device_is_not_worn():
    readings = [reading(at(0), "worn", 1)]

    assert consistency(LEAK.incident, home_device(), readings)["wearable_worn"] is None


def test_the_stories_pass_every_check():
    for story in (LEAK, FALL):
        checks = consistency(story.incident, story.device, story.readings)
        assert checks["device_registered_before_loss"] and checks["readings_continuous"]
    assert consistency(FALL.incident, FALL.device, FALL.readings)["wearable_worn"] is True


@pytest.mark.parametrize(("alert_changes", "with_readings", "end"), [
    pytest.param({}, True, at(25), id="the last wet reading"),
    pytest.param({}, False, at(30, 10) - timedelta(seconds=300), id="without readings: the clear less clear_s"),
    pytest.param({"cleared_at": None}, True, None, id="not cleared"),
])
def test_loss_end(alert_changes, with_readings, end):
    alert = replace(LEAK.alert, **alert_changes)

    assert loss_end(LEAK.incident, alert, LEAK.readings if with_readings else ()) == end


def test_a_fall_has_no_end_and_no_alert_none():
    assert loss_end(FALL.incident, FALL.alert, FALL.readings) is None
    assert loss_end(LEAK.incident, None, LEAK.readings) is None


def test_last_detected_stops_where_asked():
    assert last_detected(LEAK.incident, LEAK.readings) == at(25)
    assert last_detected(LEAK.incident, LEAK.readings, until=at(10, 5)) == at(10)
    assert last_detected(LEAK.incident, []) is None


BUILT_AT = at(60)


def _package(story=LEAK, *, readings=None, built_at=BUILT_AT, outreach=()):
    window = evidence_window(story.incident, story.alert, built_at)
    readings = story.readings if readings is None else readings
    return evidence_package(
        claim_id="c-1", incident=story.incident, device=story.device, readings=readings, alerts=[story.alert],
        outreach=outreach, checks=consistency(story.incident, story.device, readings), window=window,
        built_at=built_at)


OUTREACH = [
    OutreachRecord(alert_id=LEAK.alert.id, step=2, to="care_manager", channel="mailto", status="sent", reason=None,
                   attempts=1, at=at(6)),
    OutreachRecord(alert_id=LEAK.alert.id, step=1, to="member", channel="json", status="failed",
                   reason="connection refused", attempts=3, at=at(1, 10)),
]


def test_the_package_holds_the_timeline_the_alert_and_who_was_told():
    package = _package(outreach=OUTREACH)

    assert set(package) == {"claim_id", "built_at", "incident", "device", "window", "readings", "readings_truncated",
                            "minutes", "alerts", "outreach", "checks"}
    assert package["window"] == {"from": "2026-11-22T01:30:00Z", "to": "2026-11-22T02:40:10Z"}
    assert package["incident"]["started_at"] == "2026-11-22T02:00:00Z"
    assert package["incident"]["rule_evidence"]["lasted_s"] == 1200
    assert package["device"] == {"device_id": "hub-7-kitchen", "kind": "home", "location": "kitchen",
                                 "report_interval_s": 10, "registered_at": "2026-10-23T02:00:00Z"}
    stamps = [r["ts"] for r in package["readings"]]
    assert stamps == sorted(stamps) and stamps[0] == "2026-11-22T01:30:00Z" and stamps[-1] == "2026-11-22T02:35:00Z"
    assert package["readings_truncated"] is False
    assert package["readings"][180] == {"ts": "2026-11-22T02:00:00Z", "metric": "water_leak", "value": 1.0,
                                        "seq": 180}
    [alert] = package["alerts"]
    assert alert["cleared_at"] == "2026-11-22T02:30:10Z"
    assert [e["action"] for e in alert["history"]] == ["raised", "condition_cleared"]
    assert [(o["step"], o["to"], o["at"]) for o in package["outreach"]] == [
        (1, "member", "2026-11-22T02:01:10Z"), (2, "care_manager", "2026-11-22T02:06:00Z")]
    assert package["checks"]["readings_continuous"] is True


def test_the_package_keeps_only_the_window():
    built_at = at(20, 30)
    package = _package(built_at=built_at)

    assert package["readings"][-1]["ts"] == "2026-11-22T02:20:30Z"
    assert sum(m["count"] for m in package["minutes"]) == len(package["readings"])


def test_too_many_readings_keeps_those_nearest_the_loss(monkeypatch):
    monkeypatch.setattr(evidence, "MAX_READINGS", 7)
    readings = seconds(-40, -30, -20, -10, 0, 10, 20, 30, 40, 50, value=1)

    package = _package(readings=list(reversed(readings)))

    assert [r["ts"] for r in package["readings"]] == [
        "2026-11-22T01:59:30Z", "2026-11-22T01:59:40Z", "2026-11-22T01:59:50Z", "2026-11-22T02:00:00Z",
        "2026-11-22T02:00:10Z", "2026-11-22T02:00:20Z", "2026-11-22T02:00:30Z"]
    assert package["readings_truncated"] is True
    # The minute aggregates still count every reading of the window.
    assert sum(m["count"] for m in package["minutes"]) == 10


def test_the_package_is_json_data_that_encodes_to_itself():
    package = _package(outreach=OUTREACH)

    assert json.loads(encode(package)) == package


def test_encode_is_canonical():
    package = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": datetime(2026, 11, 22, 3, 0, tzinfo=UTC)},
               "c": date(1950, 5, 17)}
    shuffled = {"c": date(1950, 5, 17), "a": {"y": datetime(2026, 11, 22, 3, 0, tzinfo=UTC), "z": "é"},
                "b": [1, 2.5, None, True]}

    data = encode(package)

    assert data == encode(shuffled) == encode(package)
    assert data == '{"a":{"y":"2026-11-22T03:00:00Z","z":"é"},"b":[1,2.5,null,true],"c":"1950-05-17"}'.encode()


def test_encode_gives_the_same_bytes_for_the_same_package_built_twice():
    assert encode(_package(outreach=OUTREACH)) == encode(_package(outreach=list(reversed(OUTREACH))))


def test_encode_refuses_what_json_cannot_hold():
    with pytest.raises(ValueError):
        encode({"value": float("nan")})
    with pytest.raises(TypeError):
        encode({"value": object()})


def test_digest_is_the_sha256_of_exactly_the_bytes():
    data = encode(_package())

    assert digest(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digest(data + b" ") != digest(data)
