"""The words each recipient gets: plain, in their time zone, one thing to do, no more health data than needed."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from vigil.alerting.facts import AlertFacts, CareManagerFacts, Contact, MemberFacts
from vigil.alerting.messages import WORDING, Message, compose, compose_tip
from vigil.alerting.tips import Tip
from vigil.rules.catalog import ALERT_TYPES

TRIGGERED = datetime(2025, 6, 3, 12, 5, tzinfo=UTC)  # 14:05 in Paris, 08:05 in New York
REPLY = "http://127.0.0.1:8080/r/tok-123"
CONSOLE = "http://127.0.0.1:8080/alerts/a-1"
ROLES = ("member", "care_manager", "emergency_contact")

MEMBER = MemberFacts(
    id="m-1", name="Anna Meyer", timezone="Europe/Paris", phone="+33 6 12 34 56 78",
    address="12 rue Lepic, 75018 Paris", consent_outreach=True,
    emergency_contacts=(Contact(name="Paul Meyer", phone="+33 6 99 00 00 01", relation="son"),),
    care_manager=CareManagerFacts(id="cm-1", name="Dana Ko", timezone="America/New_York", phone="+1 212 555 0100"),
)


def _minutes(*means: float | None) -> list[dict]:
    return [{"minute": f"2025-06-03T11:{55 + i:02d}:00Z", "mean": m, "readings": 0 if m is None else 6}
            for i, m in enumerate(means)]


# Evidence as the rules record it (vigil.rules: minutes.py, spans.py, counts.py, falls.py, offline.py).
EVIDENCE: dict[str, dict] = {
    "tachycardia": {"rule": "tachycardia", "parameters": {}, "tier": 0, "metric": "heart_rate",
                    "minutes": _minutes(140, 150, 152, 146, 151, 149, 147, 148, 145, 152), "steps": 12},
    "bradycardia": {"rule": "bradycardia", "tier": 0, "metric": "heart_rate", "minutes": _minutes(*[38.4] * 10)},
    "low_spo2": {"rule": "low_spo2", "tier": 1, "metric": "spo2", "minutes": _minutes(84, 83.2)},
    "fall": {"rule": "fall", "metric": "fall", "fall_at": "2025-06-03T12:04:00Z", "quiet_s": 60,
             "activity_metric": "steps", "activity_within_quiet": 0, "worn": 1.0},
    "device_offline": {"rule": "device_offline", "parameters": {"silent_intervals": 3, "report_interval_s": 300,
                                                                "threshold_s": 900},
                       "last_message_at": "2025-06-03T11:50:00.123456Z", "silent_since": "2025-06-03T11:50:00.123456Z",
                       "pipeline_live_since": "2025-06-01T00:00:00Z"},
    "low_battery": {"rule": "low_battery", "metric": "battery", "first_at": "2025-06-03T12:05:00Z",
                    "last_at": "2025-06-03T12:05:00Z", "readings": 1, "span_s": 0.0, "peak": 8},
    "smoke": {"rule": "smoke", "metric": "smoke", "first_at": "2025-06-03T12:04:00Z", "last_at": "2025-06-03T12:04:45Z",
              "readings": 4, "span_s": 45.0, "peak": 1},
    "co": {"rule": "co", "tier": 1, "metric": "co_ppm", "minutes": _minutes(155.5, None, 171.2, 160)},
    "gas_leak": {"rule": "gas_leak", "metric": "gas_lel", "readings": 3, "span_s": 30.0, "peak": 12.5},
    "water_leak": {"rule": "water_leak", "metric": "water_leak", "readings": 5, "span_s": 120.0, "peak": 1},
    "freeze_risk": {"rule": "freeze_risk", "tier": 0, "metric": "temperature", "minutes": _minutes(4.5, 3.2, 4.0)},
    "overheat": {"rule": "overheat", "metric": "temperature", "readings": 4, "span_s": 30.0, "peak": 61.0},
    "electrical_arcing": {"rule": "electrical_arcing", "metric": "arc_events", "window_s": 600,
                          "events": [{"at": "2025-06-03T12:00:00Z", "value": 2}, {"at": "2025-06-03T12:04:00Z",
                                                                                   "value": 2}], "total": 4},
}
FIGURES = {
    "tachycardia": "heart rate around 148 bpm for 10 minutes, at rest",
    "bradycardia": "heart rate around 38 bpm for 10 minutes",
    "low_spo2": "blood oxygen around 84 % for 2 minutes",
    "fall": "a fall detected at {fall}, then no movement for 60 seconds",
    "device_offline": "no message since 3 June at {silent}",
    "low_battery": "battery at 8 %",
    "smoke": "smoke detected for 45 seconds",
    "co": "carbon monoxide up to 171 ppm over 4 minutes",
    "gas_leak": "gas at 12.5 % of the lower explosive limit",
    "water_leak": "water detected for 2 minutes",
    "freeze_risk": "temperature down to 3.2 °C over 3 minutes",
    "overheat": "temperature up to 61 °C",
    "electrical_arcing": "4 arcing events within 10 minutes",
}
# Local times of the fall and of the last message, by reader's zone.
LOCAL = {"Europe/Paris": {"fall": "14:04", "silent": "13:50"}, "America/New_York": {"fall": "08:04", "silent": "07:50"}}
SEVERITY = {"fall": "critical", "smoke": "critical", "co": "critical", "gas_leak": "critical", "overheat": "critical",
            "low_battery": "low", "device_offline": "medium", "freeze_risk": "medium"}
HOME = {"smoke", "co", "gas_leak", "water_leak", "freeze_risk", "overheat", "electrical_arcing"}
ON_BODY = {"tachycardia", "bradycardia", "low_spo2", "fall"}


def _alert(alert_type: str, *, evidence: dict | None = None, location: str | None = "default",
           **changes) -> AlertFacts:
    if location == "default":
        location = "kitchen" if alert_type in HOME else None
    alert = AlertFacts(id="a-1", type=alert_type, severity=SEVERITY.get(alert_type, "high"), status="open",
                       device_id="dev-7", location=location, triggered_at=TRIGGERED, raised_at=TRIGGERED,
                       evidence=EVIDENCE[alert_type] if evidence is None else evidence)
    return replace(alert, **changes)


def _compose(role: str, *alerts: AlertFacts, tz: str | None = None, told=("Anna Meyer (the member)",),
             member: MemberFacts = MEMBER) -> Message:
    timezone = tz or {"member": "Europe/Paris", "care_manager": "America/New_York"}.get(role, "Europe/Paris")
    return compose(to_role=role, alerts=alerts, member=member, recipient_timezone=timezone, told=told,
                   reply_url=REPLY, console_url=CONSOLE)


def test_the_wording_table_covers_every_alert_type():
    assert set(WORDING) == set(ALERT_TYPES) == set(EVIDENCE)


@pytest.mark.parametrize("evidence", [None, {}, {"minutes": "x", "peak": "high", "fall_at": 5, "span_s": None,
                                                 "total": [], "last_message_at": "yesterday"},
                                      {"minutes": [None, {"mean": "high"}], "window_s": 600}])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("alert_type", sorted(EVIDENCE))
def test_every_type_composes_for_every_role_whatever_the_evidence(alert_type, role, evidence):
    message = _compose(role, _alert(alert_type, evidence=evidence))
    assert message.title and message.body
    assert "{" not in message.body and "None" not in message.body
    assert WORDING[alert_type].kind in message.title or WORDING[alert_type].kind in message.body


@pytest.mark.parametrize("alert_type", sorted(FIGURES))
def test_the_member_gets_their_own_figure_in_their_time_zone(alert_type):
    body = _compose("member", _alert(alert_type)).body
    assert FIGURES[alert_type].format(**LOCAL["Europe/Paris"]) in body
    assert "On 3 June at 14:05 (Europe/Paris)" in body


@pytest.mark.parametrize("alert_type", sorted(FIGURES))
def test_the_care_manager_gets_the_key_figure_in_their_time_zone(alert_type):
    body = _compose("care_manager", _alert(alert_type)).body
    assert FIGURES[alert_type].format(**LOCAL["America/New_York"]) in body
    assert "on 3 June at 08:05 (America/New_York)" in body


@pytest.mark.parametrize("alert_type", sorted(FIGURES))
def test_emergency_contacts_get_the_kind_of_event_and_no_readings(alert_type):
    message = _compose("emergency_contact", _alert(alert_type))
    text = message.title + message.body
    assert WORDING[alert_type].kind in text
    for reading in (FIGURES[alert_type].format(**LOCAL["Europe/Paris"]), "bpm", "ppm", " %", "°C", "arcing events",
                    "no movement"):
        assert reading not in text


@pytest.mark.parametrize("alert_type", sorted(EVIDENCE))
def test_with_no_evidence_the_message_falls_back_to_words(alert_type):
    body = _compose("care_manager", _alert(alert_type, evidence={})).body
    assert FIGURES[alert_type].format(**LOCAL["America/New_York"]) not in body
    assert WORDING[alert_type].kind in body


@pytest.mark.parametrize(("alert_type", "to_do"), [
    ("water_leak", "What to do now: turn off the water at the main valve if you can do so safely."),
    ("co", "What to do now: get everyone outside into fresh air now and call the emergency number."),
    ("gas_leak", "What to do now: do not switch anything on or off; leave the home and call the gas emergency "
                 "line from outside."),
    ("fall", "What to do now: if you need help, call your care manager Dana Ko on +1 212 555 0100."),
    ("smoke", "What to do now: get out of the home now"),
    ("low_battery", "What to do now: charge device dev-7 or change its batteries today."),
    ("device_offline", "What to do now: check that device dev-7 is switched on"),
])
def test_the_member_gets_the_one_thing_to_do_now(alert_type, to_do):
    assert to_do in _compose("member", _alert(alert_type, location=None)).body


@pytest.mark.parametrize(("member", "helper"), [
    (replace(MEMBER, care_manager=CareManagerFacts(id="cm-1", name="Dana Ko")), "Paul Meyer on +33 6 99 00 00 01"),
    (replace(MEMBER, care_manager=None, emergency_contacts=()), "the emergency number"),
])
def test_a_fallen_member_is_told_whom_to_call(member, helper):
    assert f"if you need help, call {helper}." in _compose("member", _alert("fall"), member=member).body


def test_the_member_message_reads_plainly():
    message = _compose("member", _alert("water_leak"))
    assert message == Message(
        title="Vigil: are you OK? We noticed a water leak",
        body="Hello Anna,\n\n"
             "On 3 June at 14:05 (Europe/Paris) your sensor in the kitchen noticed a water leak "
             "(water detected for 2 minutes).\n\n"
             "What to do now: turn off the water at the main valve if you can do so safely.\n\n"
             f"Are you OK? Tap to tell us you're OK: {REPLY}\n\n"
             "— Vigil, for your insurer",
    )


@pytest.mark.parametrize("alert_type", sorted(EVIDENCE))
@pytest.mark.parametrize("role", ROLES)
def test_the_reply_link_is_for_the_member_only_and_the_console_link_for_the_care_manager(alert_type, role):
    body = _compose(role, _alert(alert_type)).body
    assert (REPLY in body) == (role == "member")
    assert (CONSOLE in body) == (role == "care_manager")


def test_without_a_reply_url_the_member_is_still_asked():
    message = compose(to_role="member", alerts=[_alert("fall")], member=MEMBER, recipient_timezone="Europe/Paris",
                      told=(), reply_url=None, console_url=None)
    assert "Are you OK?" in message.body and "Tap" not in message.body


def test_the_contact_message_names_the_member_the_insurer_who_was_told_and_the_phone():
    message = _compose("emergency_contact", _alert("fall"),
                       told=["Anna Meyer (the member)", "Dana Ko (care manager)"])
    assert message.title == "Vigil: Anna Meyer may need you (a possible fall)"
    assert message.body == (
        "This is Vigil, writing on behalf of Anna Meyer's insurer. You are listed as an emergency contact of "
        "Anna Meyer.\n\n"
        "We noticed a possible fall, on 3 June at 14:05 (Europe/Paris).\n\n"
        "Already told: Anna Meyer (the member) and Dana Ko (care manager).\n\n"
        "What to do: Please call Anna on +33 6 12 34 56 78; if they do not answer, go and check on them if you can, "
        "or call the emergency number."
    )


@pytest.mark.parametrize(("alert_type", "location", "place"), [
    ("gas_leak", "kitchen", "a gas leak at 12 rue Lepic, 75018 Paris (kitchen), on"),
    ("water_leak", None, "a water leak at 12 rue Lepic, 75018 Paris, on"),
    # A wearable goes where the member goes: its registered location is no place of the event.
    ("fall", "living room", "a possible fall, on"),
    ("tachycardia", None, "a very fast heart rate, on"),
])
def test_contacts_get_the_address_only_for_a_home_hazard(alert_type, location, place):
    body = _compose("emergency_contact", _alert(alert_type, location=location)).body
    assert place in body
    assert ("12 rue Lepic" in body) == (alert_type in HOME)


def test_the_care_manager_message():
    message = _compose("care_manager", _alert("tachycardia"), told=[])
    assert message.title == "Vigil [HIGH] Anna Meyer: a very fast heart rate"
    assert message.body == (
        "Anna Meyer:\n"
        "- a very fast heart rate (high), on 3 June at 08:05 (America/New_York); heart rate around 148 bpm for "
        "10 minutes, at rest; device dev-7\n\n"
        "Nobody else has been told yet.\n\n"
        "Reach Anna: +33 6 12 34 56 78\n\n"
        "What to do: Call Anna on +33 6 12 34 56 78 to ask how they feel and whether they have taken their "
        "medicines.\n\n"
        f"Open the alert in the console: {CONSOLE}"
    )


def test_a_member_without_a_phone():
    member = replace(MEMBER, phone=None)
    assert "Reach Anna: no phone number on file" in _compose("care_manager", _alert("fall"), member=member).body
    assert "call Anna on their usual number" in _compose("emergency_contact", _alert("fall"), member=member).body


def test_grouped_alerts_make_one_message_listing_each_most_severe_first():
    leak = _alert("water_leak")
    smoke = _alert("smoke", location="hallway")
    member_body = _compose("member", leak, smoke).body
    assert "We noticed:\n- on 3 June at 14:05 (Europe/Paris) your sensor in the hallway noticed smoke" in member_body
    assert "\n- on 3 June at 14:05 (Europe/Paris) your sensor in the kitchen noticed a water leak" in member_body
    assert "What to do now: get out of the home now" in member_body
    assert _compose("member", leak, smoke).title == "Vigil: are you OK? We noticed 2 things"
    manager = _compose("care_manager", leak, smoke)
    assert manager.title == "Vigil [CRITICAL] Anna Meyer: 2 alerts"
    assert manager.body.index("- smoke (critical)") < manager.body.index("- a water leak (high)")
    contact = _compose("emergency_contact", leak, smoke).body
    assert "We noticed:\n- smoke at 12 rue Lepic" in contact and "\n- a water leak at 12 rue Lepic" in contact


def test_an_unknown_time_zone_falls_back_to_utc():
    assert "on 3 June at 12:05 (UTC)" in _compose("care_manager", _alert("fall"), tz="Mars/Olympus").body


def test_an_unknown_alert_type_still_composes():
    alert = replace(_alert("fall"), type="door_left_open")
    for role in ROLES:
        assert "a door left open alert" in (_compose(role, alert).title + _compose(role, alert).body)


def test_no_alerts_is_a_mistake():
    with pytest.raises(ValueError, match="at least one alert"):
        compose(to_role="member", alerts=[], member=MEMBER, recipient_timezone="UTC", told=(), reply_url=None,
                console_url=None)


def test_compose_tip():
    message = compose_tip(_alert("water_leak"), MEMBER, Tip(title="Know your valve", text="It is under the sink."))
    assert message == Message(
        title="Vigil: Know your valve",
        body="Hello Anna,\n\n"
             "After a water leak on 3 June at 14:05 (Europe/Paris), here is one thing that helps keep it from "
             "happening again.\n\n"
             "Know your valve: It is under the sink.\n\n"
             "— Vigil, for your insurer",
    )


@pytest.mark.parametrize(("location", "place"), [
    ("kitchen", "in the kitchen"),
    ("the kitchen", "in the kitchen"),
    ("The garage", "in The garage"),
    ("in the attic", "in the attic"),
    ("upstairs", "upstairs"),
])
def test_a_room_reads_as_a_place_however_it_was_registered(location, place):
    body = _compose("member", _alert("water_leak", location=location)).body
    assert f"your sensor {place} noticed" in body


@pytest.mark.parametrize("role", ["member", "emergency_contact"])
def test_where_a_wearable_is_worn_is_not_a_place(role):
    body = _compose(role, _alert("tachycardia", location="wrist")).body
    assert "wrist" not in body
