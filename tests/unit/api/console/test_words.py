"""The console's plain words: durations, countdowns, ages, history lines and why a rule raised an alert."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from api.console import words
from vigil.rules.catalog import DEFAULT_RULES
from vigil.rules.evidence import parameters

NOW = datetime(2026, 11, 22, 14, 30, tzinfo=UTC)
RULES = {rule.type: parameters(rule) for rule in DEFAULT_RULES}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (89, "89 s"), (90, "1 min"), (5399, "89 min"), (5400, "1 h 30 min"), (7200, "2 h"),
     (172_800, "2 d"), (190_800, "2 d 5 h"), (-5, "0 s")],
)
def test_durations_are_short_and_exact_enough(seconds: float, text: str) -> None:
    assert words.duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "due now"), (-30, "due now"), (45, "in 0:45"), (245, "in 4:05"), (3599, "in 59:59"), (3600, "in 60 min"),
     (8000, "in 2 h 13 min")],
)
def test_countdowns_read_as_the_page_script_writes_them(seconds: float, text: str) -> None:
    assert words.countdown(seconds) == text


@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [(date(1941, 3, 14), date(2026, 3, 13), 84), (date(1941, 3, 14), date(2026, 3, 14), 85), (None, NOW.date(), None)],
)
def test_age_counts_whole_years(birth: date | None, today: date, age: int | None) -> None:
    assert words.age_years(birth, today) == age


@pytest.mark.parametrize(
    ("moment", "text"),
    [(datetime(2026, 11, 22, 9, 5, tzinfo=UTC), "09:05"),
     (datetime(2026, 11, 20, 9, 5, tzinfo=UTC), "20 Nov 09:05"),
     (datetime(2025, 11, 20, 9, 5, tzinfo=UTC), "20 Nov 2025 09:05"),
     (None, "—")],
)
def test_clock_times_drop_what_the_reader_knows(moment: datetime | None, text: str) -> None:
    assert words.clock(moment, "UTC", NOW) == text


def test_clock_times_are_in_the_viewers_zone() -> None:
    assert words.clock(datetime(2026, 7, 1, 13, 0, tzinfo=UTC), "Europe/Paris", datetime(2026, 7, 1, tzinfo=UTC)) \
        == "15:00"


@pytest.mark.parametrize(
    ("value", "metric", "text"),
    [(148.4, "heart_rate", "148 bpm"), (12.25, "temperature", "12.2 °C"), (-6.7, "temperature", "-6.7 °C"),
     (8.0, "battery", "8 %"), (None, "spo2", "no reading"), (1.0, "smoke", "1")],
)
def test_quantities_carry_their_unit(value: float | None, metric: str, text: str) -> None:
    assert words.quantity(value, metric) == text


@pytest.mark.parametrize(
    ("entry", "title", "details"),
    [
        ({"action": "raised"}, "Raised", ""),
        ({"action": "resolved", "outcome": "member_ok", "via": "reply_link"}, "Resolved",
         "The member is OK · the member tapped \u201cI'm OK\u201d"),
        ({"action": "resolved", "outcome": "assisted", "note": "Plumber came."}, "Resolved",
         "The member was helped · Plumber came."),
        ({"action": "snoozed", "minutes": 15}, "Snoozed", "for 15 min"),
        ({"action": "assigned", "to": "cm-2"}, "Assigned", "to cm-2"),
        ({"action": "severity_changed", "severity": "critical"}, "Severity changed", "now critical"),
        ({"action": "call_logged", "text": "No answer."}, "Call logged", "No answer."),
        ({"action": "something_new"}, "Something new", ""),
        ({"episode": "abc"}, "Episode", ""),
    ],
)
def test_history_entries_in_words(entry: dict, title: str, details: str) -> None:
    assert words.history_line(entry) == (title, details)


@pytest.mark.parametrize(
    ("alert_type", "line"),
    [
        ("tachycardia", "above 120 bpm for 10 min"),
        ("low_spo2", "below 90 % for 5 min (high); or below 85 % for 2 min (critical)"),
        ("fall", "the fall detector fires, then no movement for 60 s"),
        ("water_leak", "the leak probe was wet for 60 s"),
        ("gas_leak", "at or above 10 % LEL for 30 s"),
        ("low_battery", "at or below 10 %"),
        ("electrical_arcing", "3 events within 10 min"),
    ],
)
def test_rules_in_words(alert_type: str, line: str) -> None:
    assert words.rule_line(alert_type, RULES[alert_type]) == line


def test_a_sustained_rule_is_explained_with_its_tier_its_minutes_and_the_activity_guard() -> None:
    minutes = [{"minute": f"2026-11-22T14:{m:02d}:00Z", "mean": mean, "readings": 4}
               for m, mean in zip(range(10), (131.4, 140, 152.3, 149, 150, 148, 147, 140, 139, 135), strict=True)]
    evidence = {"parameters": RULES["tachycardia"], "tier": 0, "metric": "heart_rate", "minutes": minutes, "steps": 14}
    assert words.explain("tachycardia", evidence, "UTC", NOW) == [
        "The one-minute average heart rate stayed above 120 bpm for 10 minutes in a row, which makes a high alert.",
        "Minute averages from 14:00 to 14:10 ranged 131–152; the highest was 152 bpm.",
        "Only 14 steps in that time (fewer than 100): the member was at rest, not exercising.",
    ]


def test_a_lower_tier_is_explained_with_the_lowest_minute() -> None:
    minutes = [{"minute": "2026-11-22T14:00:00Z", "mean": 84.2, "readings": 4},
               {"minute": "2026-11-22T14:01:00Z", "mean": 83.0, "readings": 4}]
    evidence = {"parameters": RULES["low_spo2"], "tier": 1, "metric": "spo2", "minutes": minutes}
    sentences = words.explain("low_spo2", evidence, "UTC", NOW)
    assert sentences[0].startswith("The one-minute average blood oxygen stayed below 85 % for 2 minutes")
    assert sentences[0].endswith("which makes a critical alert.")
    assert sentences[1].endswith("the lowest was 83 %.")


@pytest.mark.parametrize(
    ("alert_type", "evidence", "sentences"),
    [
        ("water_leak",
         {"metric": "water_leak", "first_at": "2026-11-22T14:00:00Z", "last_at": "2026-11-22T14:01:15Z",
          "readings": 6, "span_s": 75.0, "peak": 1},
         ["The leak probe was wet for 75 s from 14:00:00 to 14:01:15 (6 readings).",
          "Vigil raises this alert once it lasts 60 s."]),
        ("gas_leak",
         {"metric": "gas_lel", "first_at": "2026-11-22T14:00:00Z", "last_at": "2026-11-22T14:00:40Z",
          "readings": 5, "span_s": 40.0, "peak": 18.5},
         ["Gas was at or above 10 % LEL for 40 s from 14:00:00 to 14:00:40 (5 readings).",
          "The most extreme reading was 18.5 % LEL.", "Vigil raises this alert once it lasts 30 s."]),
        ("low_battery",
         {"metric": "battery", "first_at": "2026-11-22T14:00:00Z", "last_at": "2026-11-22T14:00:00Z",
          "readings": 1, "span_s": 0.0, "peak": 8},
         ["Battery was at or below 10 % at 14:00 (1 reading).", "The most extreme reading was 8 %."]),
        ("electrical_arcing", {"metric": "arc_events", "window_s": 600, "total": 7, "events": []},
         ["7 arcing events within 10 min.", "Vigil raises this alert at 3 in that time."]),
        ("fall",
         {"metric": "fall", "fall_at": "2026-11-22T14:02:00Z", "quiet_s": 60, "activity_metric": "steps", "worn": 1},
         ["The wearable's fall detector fired at 14:02, and no movement followed for 60 s: the member may not have "
          "got up.", "The wearable was being worn."]),
        ("smoke", {"metric": "smoke"}, []),
    ],
)
def test_span_window_and_fall_rules_are_explained(alert_type: str, evidence: dict, sentences: list[str]) -> None:
    assert words.explain(alert_type, {"parameters": RULES[alert_type], **evidence}, "UTC", NOW) == sentences


def test_a_silent_device_is_explained_with_how_long_it_has_been_quiet() -> None:
    evidence = {"parameters": {"silent_intervals": 3, "report_interval_s": 300, "threshold_s": 900},
                "silent_since": "2026-11-22T13:45:00.123456Z", "last_message_at": "2026-11-22T13:45:00.123456Z"}
    assert words.explain("device_offline", evidence, "UTC", NOW) == [
        "No message from the device since 13:45 (44 min ago).",
        "Vigil raises this alert after 15 min of silence (it reports every 5 min).",
    ]


_CHECKED = {"device_registered_before_loss": True, "device_registered_at": "2026-10-01T08:00:00Z",
            "readings_continuous": True, "largest_gap_s": 60.0, "allowed_gap_s": 750.0, "readings_before_loss": 30,
            "wearable_worn": None}


@pytest.mark.parametrize(
    ("checks", "claim_type", "lines"),
    [
        (_CHECKED, "water_damage", [
            ("Device registered before the loss", "Yes, registered 1 Oct 09:00", "ok"),
            ("Readings continuous before the loss", "Yes: the longest gap was 60 s (12 min allowed)", "ok"),
            ("Readings in the 30 minutes before", "30", "ok"),
        ]),
        ({**_CHECKED, "device_registered_before_loss": False, "device_registered_at": "2026-11-22T14:10:00Z",
          "readings_continuous": False, "largest_gap_s": 1500.0, "readings_before_loss": 2}, "fire", [
            ("Device registered before the loss", "No, registered 14:10", "bad"),
            ("Readings continuous before the loss", "No: a gap of 25 min (12 min allowed)", "bad"),
            ("Readings in the 30 minutes before", "2", "ok"),
        ]),
        ({**_CHECKED, "readings_continuous": False, "largest_gap_s": None, "readings_before_loss": 0}, "fire", [
            ("Device registered before the loss", "Yes, registered 1 Oct 09:00", "ok"),
            ("Readings continuous before the loss", "No: there were no readings before the loss", "bad"),
            ("Readings in the 30 minutes before", "0", "bad"),
        ]),
        # A wearable's claim says whether it was worn, or that nothing said so.
        ({**_CHECKED, "wearable_worn": None}, "accident", [
            ("Device registered before the loss", "Yes, registered 1 Oct 09:00", "ok"),
            ("Readings continuous before the loss", "Yes: the longest gap was 60 s (12 min allowed)", "ok"),
            ("Readings in the 30 minutes before", "30", "ok"),
            ("Wearable worn at the time", "Not reported", "unknown"),
        ]),
        ({"wearable_worn": False}, "accident", [("Wearable worn at the time", "No: it was off the wrist", "bad")]),
        ({"wearable_worn": True}, "accident", [("Wearable worn at the time", "Yes", "ok")]),
        ({}, "water_damage", []),
    ],
)
def test_a_claims_checks_read_as_findings(checks: dict, claim_type: str, lines: list[tuple[str, str, str]]) -> None:
    # 1 October is in summer time in London: 08:00 UTC is 09:00 there.
    assert words.claim_checks(checks, claim_type, "Europe/London", NOW) == lines
