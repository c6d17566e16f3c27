"""The escalation ladder: parsing VIGIL_ESCALATION, planning an alert's steps, replanning, repeats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from vigil.alerting.ladder import DEFAULT_LADDER, PlannedStep, Step, next_repeat, parse_ladder, plan_ladder, replan

RAISED = datetime(2025, 6, 3, 12, 0, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return RAISED + timedelta(seconds=seconds)


@pytest.mark.parametrize("text", [None, "", "   \n"])
def test_no_setting_is_the_default_ladder(text):
    assert parse_ladder(text) == DEFAULT_LADDER


def test_the_default_ladder_is_contract_section_5():
    assert {severity: [(s.to, s.after_s) for s in steps] for severity, steps in DEFAULT_LADDER.items()} == {
        "critical": [("member", 0), ("care_manager", 60), ("emergency_contacts", 300)],
        "high": [("member", 0), ("care_manager", 300)],
        "medium": [("member", 0), ("care_manager", 0)],
        "low": [("member", 0)],
    }


def test_a_severity_given_replaces_its_ladder_and_the_others_keep_the_default():
    ladders = parse_ladder(json.dumps({"high": [{"to": "care_manager", "after_s": 120}, {"to": "member", "after_s": 0}],
                                       "low": []}))
    assert ladders["high"] == (Step(to="member", after_s=0), Step(to="care_manager", after_s=120))
    assert ladders["low"] == ()
    assert ladders["critical"] == DEFAULT_LADDER["critical"]
    assert ladders["medium"] == DEFAULT_LADDER["medium"]


@pytest.mark.parametrize(("text", "sentence"), [
    ("{not json", "VIGIL_ESCALATION is not valid JSON: Expecting property name enclosed in double quotes at line 1 "
                  "column 2"),
    ("[]", "VIGIL_ESCALATION must be a JSON object of severity to list of steps, not a list"),
    ('{"urgent": []}', "VIGIL_ESCALATION: severity 'urgent' is not one of critical, high, medium, low"),
    ('{"high": {"to": "member"}}', "VIGIL_ESCALATION: the steps of 'high' must be a list, not an object"),
    ('{"high": ["member"]}', 'VIGIL_ESCALATION: step 1 of \'high\' must be an object like {"to": "member", '
                             '"after_s": 0}, not a string'),
    ('{"high": [{"to": "member", "after_s": 0, "via": "sms"}]}',
     "VIGIL_ESCALATION: step 1 of 'high' has an unknown key 'via' (only to and after_s)"),
    ('{"high": [{"after_s": 0}]}', "VIGIL_ESCALATION: step 1 of 'high' has no 'to'"),
    ('{"high": [{"to": "member"}]}', "VIGIL_ESCALATION: step 1 of 'high' has no 'after_s'"),
    ('{"critical": [{"to": "member", "after_s": 0}, {"to": "doctor", "after_s": 5}]}',
     "VIGIL_ESCALATION: step 2 of 'critical' sends to 'doctor', which is not one of member, care_manager, "
     "emergency_contacts"),
    ('{"low": [{"to": "member", "after_s": -1}]}',
     "VIGIL_ESCALATION: after_s of step 1 of 'low' must be a whole number of seconds from 0 to 86400, not -1"),
    ('{"low": [{"to": "member", "after_s": 86401}]}',
     "VIGIL_ESCALATION: after_s of step 1 of 'low' must be a whole number of seconds from 0 to 86400, not 86401"),
    ('{"low": [{"to": "member", "after_s": 1.5}]}',
     "VIGIL_ESCALATION: after_s of step 1 of 'low' must be a whole number of seconds from 0 to 86400, not 1.5"),
    ('{"low": [{"to": "member", "after_s": "60"}]}',
     "VIGIL_ESCALATION: after_s of step 1 of 'low' must be a whole number of seconds from 0 to 86400, not \"60\""),
    ('{"low": [{"to": "member", "after_s": true}]}',
     "VIGIL_ESCALATION: after_s of step 1 of 'low' must be a whole number of seconds from 0 to 86400, not true"),
    ('{"high": [{"to": "member", "after_s": 0}, {"to": "member", "after_s": 600}]}',
     "VIGIL_ESCALATION: the ladder of 'high' names 'member' more than once"),
])
def test_an_invalid_ladder_is_refused_with_one_sentence(text, sentence):
    with pytest.raises(ValueError) as refused:
        parse_ladder(text)
    assert str(refused.value) == sentence


@pytest.mark.parametrize("after_s", [0, 86_400])
def test_after_s_bounds_are_allowed(after_s):
    assert parse_ladder(json.dumps({"low": [{"to": "member", "after_s": after_s}]}))["low"] == (
        Step(to="member", after_s=after_s),)


@pytest.mark.parametrize(("severity", "expected"), [
    ("critical", [(1, "member", 0), (2, "care_manager", 60), (3, "emergency_contacts", 300)]),
    ("high", [(1, "member", 0), (2, "care_manager", 300)]),
    ("medium", [(1, "member", 0), (2, "care_manager", 0)]),
    ("low", [(1, "member", 0)]),
])
def test_plan_ladder(severity, expected):
    planned = plan_ladder(severity, RAISED, DEFAULT_LADDER)
    assert planned == [PlannedStep(step=n, recipient=to, kind="ladder", due_at=_at(s)) for n, to, s in expected]


def test_plan_ladder_uses_the_configured_ladder():
    ladder = parse_ladder('{"low": [{"to": "care_manager", "after_s": 30}]}')
    assert plan_ladder("low", RAISED, ladder) == [
        PlannedStep(step=1, recipient="care_manager", kind="ladder", due_at=_at(30))]


def _planned(*steps: tuple[int, str, int]) -> list[PlannedStep]:
    return [PlannedStep(step=n, recipient=to, kind="ladder", due_at=_at(s)) for n, to, s in steps]


@pytest.mark.parametrize(("existing", "done", "added", "moved"), [
    # high -> critical while the member was told and the care manager waits for 300 s: the care manager's
    # step moves to 60 s and the emergency contacts get a new step 3.
    (_planned((1, "member", 0), (2, "care_manager", 300)), {"member"},
     _planned((3, "emergency_contacts", 300)), _planned((2, "care_manager", 60))),
    # Everyone the high ladder names was told already: only the new recipient is added.
    (_planned((1, "member", 0), (2, "care_manager", 300)), {"member", "care_manager"},
     _planned((3, "emergency_contacts", 300)), []),
    # low -> critical before anything ran: the member keeps step 1 (already due), the others are added.
    (_planned((1, "member", 0)), set(),
     _planned((2, "care_manager", 60), (3, "emergency_contacts", 300)), []),
    # A repeat already numbered 4: new steps count on from there.
    ([*_planned((1, "member", 0), (2, "care_manager", 300)),
      PlannedStep(step=4, recipient="care_manager", kind="repeat", due_at=_at(14_700))], {"member", "care_manager"},
     _planned((5, "emergency_contacts", 300)), []),
])
def test_replan_for_a_rising_severity(existing, done, added, moved):
    assert replan("critical", RAISED, DEFAULT_LADDER, existing, done) == (added, moved)


def test_replan_never_moves_a_step_later():
    ladder = parse_ladder('{"critical": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 900}]}')
    existing = _planned((1, "member", 0), (2, "care_manager", 300))
    assert replan("critical", RAISED, ladder, existing, {"member"}) == ([], [])


def test_next_repeat():
    last = PlannedStep(step=3, recipient="emergency_contacts", kind="ladder", due_at=_at(300))
    assert next_repeat(last, 14_400) == PlannedStep(step=4, recipient="emergency_contacts", kind="repeat",
                                                    due_at=_at(14_700))
    assert next_repeat(next_repeat(last, 60), 60).step == 5
