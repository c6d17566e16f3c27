"""The console's plain words: alert and claim types, statuses, durations, why a rule raised an alert, and
what a claim's evidence checks found.

Pure: templates call these through the filters `api.console.templating` registers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from vigil.telemetry import METRICS

TYPE_WORDS: dict[str, str] = {
    "tachycardia": "Fast heart rate",
    "bradycardia": "Slow heart rate",
    "low_spo2": "Low blood oxygen",
    "fall": "Fall, no movement after",
    "device_offline": "Device silent",
    "low_battery": "Low battery",
    "smoke": "Smoke alarm",
    "co": "Carbon monoxide",
    "gas_leak": "Gas leak",
    "water_leak": "Water leak",
    "freeze_risk": "Risk of freezing",
    "overheat": "Overheating",
    "electrical_arcing": "Electrical arcing",
}
STATUS_WORDS = {"open": "Open", "acknowledged": "Acknowledged", "escalated": "Escalated", "resolved": "Resolved"}
OUTCOME_WORDS = {
    "member_ok": "The member is OK",
    "assisted": "The member was helped",
    "emergency_dispatched": "Emergency services sent",
    "false_alarm": "False alarm",
    "no_action_needed": "No action needed",
}
RECIPIENT_WORDS = {
    "member": "Member",
    "care_manager": "Care manager",
    "emergency_contacts": "Emergency contacts",
    "emergency_contact": "Emergency contact",
}
CLAIM_TYPE_WORDS = {"water_damage": "Water damage", "fire": "Fire", "accident": "Accident"}
CLAIM_STATUS_WORDS = {
    "prefilled": "Pre-filled",
    "confirmed": "Confirmed",
    "submitted": "Submitted",
    "accepted": "Accepted",
    "needs_info": "Needs information",
    "rejected": "Rejected",
    "paid": "Paid",
    "failed": "Delivery failed",
}
DELIVERY_WORDS = {
    "pending": "Being delivered",
    "delivered": "Delivered",
    "failed": "Given up",
    "held": "Held: no insurer endpoint is configured",
}
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}

# Metric name and short unit as a care manager reads them.
_METRIC_WORDS: dict[str, tuple[str, str]] = {
    "heart_rate": ("heart rate", "bpm"),
    "spo2": ("blood oxygen", "%"),
    "skin_temp": ("skin temperature", "°C"),
    "steps": ("steps", "steps"),
    "battery": ("battery", "%"),
    "co_ppm": ("carbon monoxide", "ppm"),
    "gas_lel": ("gas", "% LEL"),
    "temperature": ("temperature", "°C"),
    "humidity": ("humidity", "%"),
    "arc_events": ("arcing events", "events"),
}
# What a flag metric at 1 means.
_FLAG_WORDS = {
    "smoke": "the smoke alarm was sounding",
    "water_leak": "the leak probe was wet",
    "fall": "the fall detector fired",
    "door_open": "the door was open",
    "motion": "there was movement",
    "worn": "the wearable was worn",
}
_OP_WORDS = {"above": "above", "at_least": "at or above", "below": "below", "at_most": "at or below"}
_HISTORY_WORDS = {
    "raised": "Raised",
    "retriggered": "Raised again while still open",
    "severity_changed": "Severity changed",
    "triggered_at_corrected": "Start time corrected by late readings",
    "condition_cleared": "Condition cleared",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "escalated": "Escalated",
    "ladder_continued": "Ladder step ran",
    "note_added": "Note",
    "assigned": "Assigned",
    "snoozed": "Snoozed",
    "call_logged": "Call logged",
}


def type_words(alert_type: str) -> str:
    return TYPE_WORDS.get(alert_type, alert_type.replace("_", " ").capitalize())


def metric_words(metric: str) -> tuple[str, str]:
    """(name, unit) of a metric; flags have no unit."""
    if metric in _METRIC_WORDS:
        return _METRIC_WORDS[metric]
    spec = METRICS.get(metric)
    return metric.replace("_", " "), "" if spec is None or spec.flag else spec.unit


def is_flag(metric: str) -> bool:
    spec = METRICS.get(metric)
    return spec is not None and spec.flag


def number(value: float) -> str:
    """As precise as a reader needs: `148`, `12.5`, `-6.7`; never `140.82`."""
    if abs(value) >= 20:
        return f"{value:.0f}"
    return f"{value:.1f}".removesuffix(".0")


def quantity(value: float | None, metric: str) -> str:
    """`148 bpm`, `12.5 °C`."""
    if value is None:
        return "no reading"
    return f"{number(value)} {metric_words(metric)[1]}".strip()


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`: precise enough to act on, short enough to scan."""
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def countdown(seconds: float) -> str:
    """Time left before a step, as the page script also writes it: `in 4:05`, `in 2 h 10 min`, `due now`."""
    seconds = int(seconds)
    if seconds <= 0:
        return "due now"
    if seconds < 3600:
        return f"in {seconds // 60}:{seconds % 60:02d}"
    return f"in {duration(seconds)}"


def age_years(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def clock(moment: datetime | None, tz: str, now: datetime, *, seconds: bool = False) -> str:
    """`14:05` today in `tz`, `3 Mar 14:05` another day, `3 Mar 2025 14:05` another year."""
    if moment is None:
        return "—"
    zone = ZoneInfo(tz)
    local, today = moment.astimezone(zone), now.astimezone(zone)
    time_of_day = local.strftime("%H:%M:%S" if seconds else "%H:%M")
    if local.date() == today.date():
        return time_of_day
    if local.year == today.year:
        return f"{local.day} {local.strftime('%b')} {time_of_day}"
    return f"{local.day} {local.strftime('%b %Y')} {time_of_day}"


def parse_time(text: Any) -> datetime | None:
    """An RFC 3339 time from evidence or history, or None when it is missing or not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def history_line(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(what happened, its particulars) of one history entry."""
    action = str(entry.get("action") or ("episode" if "episode" in entry else "change"))
    title = _HISTORY_WORDS.get(action, action.replace("_", " ").capitalize())
    details: list[str] = []
    if action == "resolved" and entry.get("outcome"):
        details.append(OUTCOME_WORDS.get(entry["outcome"], entry["outcome"]))
        if entry.get("via") == "reply_link":
            details.append("the member tapped \u201cI'm OK\u201d")
    if action == "severity_changed" and entry.get("severity"):
        details.append(f"now {entry['severity']}")
    if action == "assigned" and entry.get("to"):
        details.append(f"to {entry['to']}")
    if action == "snoozed" and entry.get("minutes"):
        details.append(f"for {entry['minutes']} min")
    for key in ("text", "note", "reason"):
        if entry.get(key):
            details.append(str(entry[key]))
    return title, " · ".join(details)


def rule_line(alert_type: str, params: Mapping[str, Any]) -> str:
    """A rule's condition in words: `above 120 bpm for 10 min`."""
    metric = str(params.get("metric", ""))
    if alert_type == "fall":
        return f"the fall detector fires, then no movement for {duration(params.get('quiet_s', 0))}"
    if "tiers" in params:
        tiers = params["tiers"]
        return "; or ".join(
            f"{_OP_WORDS[t['op']]} {quantity(t['threshold'], metric)} for {t['minutes']} min"
            + (f" ({t['severity']})" if len(tiers) > 1 else "")
            for t in tiers
        )
    if "window_s" in params:
        return f"{params['threshold']:g} {metric_words(metric)[1]} within {duration(params['window_s'])}"
    if "op" in params:
        if is_flag(metric):
            condition = _FLAG_WORDS.get(metric, metric)
        else:
            condition = f"{_OP_WORDS[params['op']]} {quantity(params['threshold'], metric)}"
        span = params.get("span_s", 0)
        return f"{condition} for {duration(span)}" if span else condition
    return "—"


def explain(alert_type: str, evidence: Mapping[str, Any], tz: str, now: datetime) -> list[str]:
    """Why the alert was raised, in sentences with the rule's own numbers; empty when the evidence says too little."""
    params = evidence.get("parameters") or {}
    metric = str(evidence.get("metric") or params.get("metric") or "")
    if alert_type == "device_offline":
        return _offline(evidence, params, tz, now)
    if alert_type == "fall" or "fall_at" in evidence:
        return _fall(evidence, params, tz, now)
    if isinstance(evidence.get("minutes"), list) and params.get("tiers"):
        return _sustained(evidence, params, metric, tz, now)
    if "window_s" in evidence and "total" in evidence:
        return _window(evidence, params, metric)
    if "first_at" in evidence and "op" in params:
        return _span(evidence, params, metric, tz, now)
    return []


def _sustained(
    evidence: Mapping[str, Any], params: Mapping[str, Any], metric: str, tz: str, now: datetime
) -> list[str]:
    tiers = params["tiers"]
    index = evidence.get("tier", 0)
    tier = tiers[index] if isinstance(index, int) and 0 <= index < len(tiers) else tiers[0]
    name = metric_words(metric)[0]
    minutes = [m for m in evidence["minutes"] if isinstance(m, dict)]
    means = [m["mean"] for m in minutes if isinstance(m.get("mean"), int | float)]
    sentences = [
        f"The one-minute average {name} stayed {_OP_WORDS[tier['op']]} {quantity(tier['threshold'], metric)} "
        f"for {tier['minutes']} minutes in a row, which makes a {tier['severity']} alert."
    ]
    if minutes and means:
        first, last = parse_time(minutes[0].get("minute")), parse_time(minutes[-1].get("minute"))
        extreme = max(means) if tier["op"] in ("above", "at_least") else min(means)
        word = "highest" if tier["op"] in ("above", "at_least") else "lowest"
        span = ""
        if first and last:
            span = f" from {clock(first, tz, now)} to {clock(last + timedelta(minutes=1), tz, now)}"
        sentences.append(f"Minute averages{span} ranged {number(min(means))}–{number(max(means))}; "
                         f"the {word} was {quantity(extreme, metric)}.")
    if "steps" in evidence and params.get("max_steps") is not None:
        sentences.append(f"Only {evidence['steps']:g} steps in that time (fewer than {params['max_steps']}): "
                         "the member was at rest, not exercising.")
    return sentences


def _span(evidence: Mapping[str, Any], params: Mapping[str, Any], metric: str, tz: str, now: datetime) -> list[str]:
    first, last = parse_time(evidence.get("first_at")), parse_time(evidence.get("last_at"))
    readings = evidence.get("readings")
    lasted = evidence.get("span_s")
    if is_flag(metric):
        what = _FLAG_WORDS.get(metric, f"{metric} was on").capitalize()
    else:
        what = f"{metric_words(metric)[0].capitalize()} was {_OP_WORDS[params['op']]} " \
               f"{quantity(params['threshold'], metric)}"
    when = ""
    if first and last:
        # A run of a few seconds needs them to be told apart from its start.
        short = (last - first).total_seconds() < 120
        when = f" from {clock(first, tz, now, seconds=short)} to {clock(last, tz, now, seconds=short)}"
        if first == last:
            when = f" at {clock(first, tz, now)}"
    count = f" ({readings} reading{'' if readings == 1 else 's'})" if isinstance(readings, int) else ""
    length = f" for {duration(lasted)}" if isinstance(lasted, int | float) and lasted > 0 else ""
    sentences = [f"{what}{length}{when}{count}."]
    if not is_flag(metric) and isinstance(evidence.get("peak"), int | float):
        sentences.append(f"The most extreme reading was {quantity(evidence['peak'], metric)}.")
    if params.get("span_s"):
        sentences.append(f"Vigil raises this alert once it lasts {duration(params['span_s'])}.")
    return sentences


def _window(evidence: Mapping[str, Any], params: Mapping[str, Any], metric: str) -> list[str]:
    name = metric_words(metric)[0]
    sentences = [f"{evidence['total']:g} {name} within {duration(evidence['window_s'])}."]
    if "threshold" in params:
        sentences.append(f"Vigil raises this alert at {params['threshold']:g} in that time.")
    return sentences


def _fall(evidence: Mapping[str, Any], params: Mapping[str, Any], tz: str, now: datetime) -> list[str]:
    fell = parse_time(evidence.get("fall_at"))
    quiet = evidence.get("quiet_s", params.get("quiet_s", 0))
    sentences = [f"The wearable's fall detector fired{f' at {clock(fell, tz, now)}' if fell else ''}, "
                 f"and no movement followed for {duration(quiet)}: the member may not have got up."]
    if evidence.get("worn") == 1:
        sentences.append("The wearable was being worn.")
    return sentences


def _offline(evidence: Mapping[str, Any], params: Mapping[str, Any], tz: str, now: datetime) -> list[str]:
    silent = parse_time(evidence.get("silent_since"))
    sentences = []
    if silent:
        sentences.append(f"No message from the device since {clock(silent, tz, now)} "
                         f"({duration((now - silent).total_seconds())} ago).")
    if params.get("threshold_s"):
        every = params.get("report_interval_s")
        usual = f" (it reports every {duration(every)})" if every else ""
        sentences.append(f"Vigil raises this alert after {duration(params['threshold_s'])} of silence{usual}.")
    return sentences


def claim_checks(checks: Mapping[str, Any], claim_type: str, tz: str, now: datetime) -> list[tuple[str, str, str]]:
    """(what was checked, what was found, `ok`|`bad`|`unknown`) for each of a claim's consistency checks."""
    lines: list[tuple[str, str, str]] = []
    if "device_registered_before_loss" in checks:
        before = bool(checks["device_registered_before_loss"])
        registered = parse_time(checks.get("device_registered_at"))
        when = f", registered {clock(registered, tz, now)}" if registered else ""
        lines.append(("Device registered before the loss", f"{'Yes' if before else 'No'}{when}",
                      "ok" if before else "bad"))
    if "readings_continuous" in checks:
        lines.append(("Readings continuous before the loss", *_continuity(checks)))
    if isinstance(checks.get("readings_before_loss"), int):
        count = checks["readings_before_loss"]
        lines.append(("Readings in the 30 minutes before", str(count), "ok" if count else "bad"))
    worn = checks.get("wearable_worn")
    if worn is not None or (claim_type == "accident" and "wearable_worn" in checks):
        found = {True: ("Yes", "ok"), False: ("No: it was off the wrist", "bad")}.get(worn, ("Not reported", "unknown"))
        lines.append(("Wearable worn at the time", *found))
    return lines


def _continuity(checks: Mapping[str, Any]) -> tuple[str, str]:
    gap, allowed = checks.get("largest_gap_s"), checks.get("allowed_gap_s")
    limit = f" ({duration(allowed)} allowed)" if isinstance(allowed, int | float) else ""
    if not isinstance(gap, int | float):
        return "No: there were no readings before the loss", "bad"
    if checks["readings_continuous"]:
        return f"Yes: the longest gap was {duration(gap)}{limit}", "ok"
    return f"No: a gap of {duration(gap)}{limit}", "bad"
