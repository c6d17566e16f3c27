"""Incidents (docs/rules.md's last column): a leak lasting 20 minutes, smoke lasting 2 minutes or joined by
overheat, a fall without getting up; once per episode, with what the claims bridge needs to decide.
"""

from __future__ import annotations

import pytest

from tests.unit.rules.story import DEVICE, MEMBER, NOW_MS, at, every, judge
from vigil.events import IncidentOpened
from vigil.rules.incidents import incident_id
from vigil.rules.state import DeviceState


def wet(from_s: float, to_s: float, value: float = 1) -> list:
    return every("water_leak", value, from_s=from_s, to_s=to_s)


def smoke(from_s: float, to_s: float, value: float = 1) -> list:
    return every("smoke", value, from_s=from_s, to_s=to_s)


def hot(from_s: float, to_s: float, celsius: float = 70) -> list:
    return every("temperature", celsius, from_s=from_s, to_s=to_s)


def kinds(incidents: list[IncidentOpened]) -> list[tuple[str, int, int]]:
    """(kind, when the loss began, when the episode became an incident), in event time."""
    return [(i.kind, i.started_at_ms, i.condition_met_at_ms) for i in incidents]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(wet(0, 1200), [("water_damage", at(0), at(20))], id="a leak lasting 20 minutes"),
        pytest.param(wet(0, 1190) + wet(1200, 1800, 0), [], id="a leak drying after 19:50"),
        pytest.param(wet(0, 3600), [("water_damage", at(0), at(20))], id="an hour-long leak opens one incident"),
        pytest.param(wet(0, 600) + wet(610, 780, 0) + wet(790, 1200), [("water_damage", at(0), at(20))],
                     id="a dry spell too short to clear is the same leak"),
        pytest.param(wet(0, 600) + wet(610, 1000, 0) + wet(1010, 2300), [("water_damage", at(0, 1010), at(0, 2210))],
                     id="a leak after a cleared one counts from its own start"),
        pytest.param(smoke(0, 120), [("fire", at(0), at(2))], id="smoke lasting 2 minutes"),
        pytest.param(smoke(0, 110) + smoke(120, 600, 0), [], id="smoke for 1:50"),
        pytest.param(smoke(0, 40) + hot(0, 40), [("fire", at(0), at(0, 30))], id="smoke with overheat"),
        pytest.param(hot(0, 600), [], id="overheat alone"),
        pytest.param(smoke(0, 20) + hot(0, 40), [], id="overheat with 20 s of toast smoke"),
        pytest.param(hot(0, 40) + hot(50, 600, 20) + smoke(400, 440), [], id="smoke after overheat cleared"),
        pytest.param(hot(0, 40) + smoke(60, 90), [("fire", at(0, 60), at(0, 90))], id="smoke joining overheat"),
    ],
)
def test_home_incidents(readings, expected):
    judgement = judge(readings)

    assert kinds(judgement.incidents) == expected


def test_a_water_damage_incident_carries_what_a_claim_needs():
    judgement = judge(wet(0, 1300), location="kitchen")

    [raised, *_] = judgement.alerts
    [incident] = judgement.incidents
    assert incident.incident_id == incident_id(DEVICE, "water_damage", at(0))
    assert (incident.kind, incident.covered_by) == ("water_damage", "home")
    assert (incident.member_id, incident.device_id, incident.location) == (MEMBER, DEVICE, "kitchen")
    assert (incident.alert_id, incident.alert_type) == (raised.alert_id, "water_leak")
    assert (incident.started_at_ms, incident.condition_met_at_ms, incident.detected_at_ms) == (at(0), at(20), NOW_MS)
    assert incident.evidence["lasted_s"] == 1200
    assert incident.evidence["incident"] == {"kind": "water_damage", "covered_by": "home", "after_s": 1200,
                                             "or_with": []}
    assert incident.evidence["parameters"]["span_s"] == 60
    assert incident.evidence["readings"]["first_at"] == "2026-11-22T02:00:00Z"
    assert incident.evidence["readings"]["readings"] == 121
    assert IncidentOpened.model_validate_json(incident.model_dump_json()) == incident


def test_a_fire_with_overheat_names_the_alert_that_joined_it():
    judgement = judge(hot(0, 40) + smoke(60, 90))

    [incident] = judgement.incidents
    overheat = next(a for a in judgement.alerts if a.type == "overheat")
    smoke_alert = next(a for a in judgement.alerts if a.type == "smoke")
    assert incident.alert_id == smoke_alert.alert_id
    assert incident.evidence["with_open_alerts"] == {"overheat": overheat.alert_id}


def wearable(to_s: float, *, from_s: float = 0, steps: float = 0) -> list:
    return every("heart_rate", 80, from_s=from_s, to_s=to_s) + every("steps", steps, from_s=from_s, to_s=to_s)


def falls(*moments: tuple[int, float]) -> list:
    """The watch's fall flag at each (minute, second)."""
    return [(at(minute, second), "fall", 1.0) for minute, second in moments]


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        pytest.param(wearable(600) + falls((0, 100)), [("accident", at(0, 100), at(0, 160))],
                     id="a fall without getting up"),
        pytest.param(wearable(600) + falls((0, 100)) + every("steps", 20, from_s=120, to_s=120), [],
                     id="a fall and getting up"),
        pytest.param(wearable(3600) + falls((0, 100), (10, 100)),
                     [("accident", at(0, 100), at(0, 160))], id="two falls in one episode"),
        pytest.param(wearable(3600) + falls((0, 100), (40, 100)),
                     [("accident", at(0, 100), at(0, 160)), ("accident", at(40, 100), at(40, 160))],
                     id="two episodes"),
    ],
)
def test_fall_incidents(readings, expected):
    judgement = judge(readings)

    assert kinds(judgement.incidents) == expected


def test_an_accident_leaves_the_cover_decision_to_the_claims_bridge():
    [incident] = judge(wearable(600) + falls((0, 100))).incidents

    assert (incident.kind, incident.covered_by, incident.alert_type) == ("accident", "health", "fall")
    assert incident.evidence["readings"]["fall_at"] == "2026-11-22T02:01:40Z"
    assert "covered" not in incident.evidence


@pytest.mark.parametrize("batch_s", [1, 10, 45, 300])
def test_an_incident_is_opened_once_however_the_readings_are_batched(batch_s):
    readings = wet(0, 3600)
    state, incidents = DeviceState(), []

    for start in range(0, 3601, batch_s):
        batch = [r for r in readings if at(0, start) <= r[0] < at(0, start + batch_s)]
        incidents += judge(batch, state=state).incidents

    assert kinds(incidents) == [("water_damage", at(0), at(20))]


def test_an_incident_from_a_late_sync_is_dated_when_the_loss_began():
    state = DeviceState()
    judge([(at(0), "battery", 90.0)], state=state)

    judgement = judge(wet(3 * 3600, 3 * 3600 + 1500), state=state)

    assert kinds(judgement.incidents) == [("water_damage", at(180), at(200))]
    assert judgement.incidents[0].detected_at_ms == NOW_MS
