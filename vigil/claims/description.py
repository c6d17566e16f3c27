"""The claim's description: what a claims handler reads first, in plain words and the member's local time.

What was seen, by which device and where, from when to when and for how long, who acknowledged the
alert and what was done about it; nothing that the evidence does not show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.claims.evidence import last_detected, loss_end
from vigil.claims.facts import AlertRecord, DeviceFacts, IncidentFacts, Reading
from vigil.rules.spec import STEPS_METRIC

# An alert's outcome (`vigil.alerting.lifecycle.OUTCOMES`) as what was done.
OUTCOME_WORDS = {
    "emergency_dispatched": "emergency help was sent",
    "member_ok": "the member said they were OK",
    "assisted": "the member was helped",
    "false_alarm": "it was a false alarm",
    "no_action_needed": "no action was needed",
}
# Who acted, from the first part of a history actor (`care_manager:cm-1`, `admin:env`, `member`).
ACTOR_WORDS = {
    "care_manager": "the care manager",
    "admin": "Vigil's operator",
    "member": "the member",
    "vigil": "Vigil",
}
# Per alert type of a home incident: what was seen, and by what.
_SEEN = {
    "water_leak": ("Water detected", "leak sensor"),
    "smoke": ("Smoke detected", "smoke alarm"),
    "overheat": ("Overheating detected", "heat sensor"),
}
_TEMPERATURE_METRIC = "temperature"
_PLACE_WORDS = ("in ", "at ", "on ", "by ", "near ", "under ", "behind ", "upstairs", "downstairs", "outside")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def room_of(incident: IncidentFacts, device: DeviceFacts) -> str | None:
    """The room of the loss: a home device's location; a wearable's says where it is worn, not a room."""
    if device.kind != "home":
        return None
    return incident.location or device.location or None


def in_room(room: str) -> str:
    """`kitchen` -> "in the kitchen"; a place that already says where ("under the stairs") stays as it is."""
    if room.lower().startswith(_PLACE_WORDS):
        return room
    return f"in {_the(room)}"


def the_room(room: str) -> str:
    """`kitchen` -> "the kitchen"; "under the stairs" -> "the area under the stairs"."""
    if room.lower().startswith(_PLACE_WORDS):
        return f"the area {room}"
    return _the(room)


def local_day(moment: datetime, timezone: str) -> date:
    """The date of `moment` in the member's zone (UTC when the zone is unknown)."""
    return _Clock(timezone, moment).day


def actor_words(actor: str | None) -> str:
    """Who acted, in plain words, from a history actor text."""
    role = (actor or "").split(":", 1)[0]
    return ACTOR_WORDS.get(role, "someone")


def describe(*, incident: IncidentFacts, device: DeviceFacts, alert: AlertRecord | None, timezone: str,
             built_at: datetime, readings: Sequence[Reading] = ()) -> str:
    """The description, e.g. "Water detected by the kitchen leak sensor from 14:02 to 14:27 (Europe/Paris) on
    Sunday 22 November 2026, 25 minutes; the alert was acknowledged by the care manager at 14:05."

    `readings` (the evidence window's) place the end of the loss on the last reading that still showed it;
    without them it is taken from when the alert cleared.
    """
    clock = _Clock(timezone, incident.started_at)
    if incident.kind == "accident":
        happened = _fall(incident, readings, clock)
    else:
        happened = _hazard(incident, device, alert, readings, built_at, clock)
    acknowledged, closed = _acknowledged(alert, clock), _closed(alert, clock)
    if alert is not None and acknowledged is None and closed is None:
        acknowledged = "nobody acknowledged the alert"
    response = [part for part in (acknowledged, closed) if part]
    if len(happened) == 1:
        # One sentence while it reads as one: what was seen; who acknowledged it.
        sentences = ["; ".join(happened + response)]
    else:
        sentences = ["; ".join(happened), *(["; ".join(response)] if response else [])]
    return " ".join(_capital(s) + "." for s in sentences)


class _Clock:
    """Local times of the member's zone, with the date only where it differs from the day of the loss."""

    def __init__(self, timezone: str, loss: datetime) -> None:
        try:
            self.zone: tzinfo = ZoneInfo(timezone)
            self.name = timezone
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            self.zone, self.name = UTC, "UTC"
        self.day = self.local(loss).date()

    def local(self, moment: datetime) -> datetime:
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(self.zone)

    def at(self, moment: datetime) -> str:
        """`14:05`, or `09:10 on Monday 23 November 2026` on another day than the loss."""
        local = self.local(moment)
        return f"{local:%H:%M}" if local.date() == self.day else f"{local:%H:%M} on {_date(local.date())}"

    def loss_day(self) -> str:
        return f"({self.name}) on {_date(self.day)}"


def _hazard(incident: IncidentFacts, device: DeviceFacts, alert: AlertRecord | None, readings: Sequence[Reading],
            built_at: datetime, clock: _Clock) -> list[str]:
    """What the home sensor saw, where and for how long; then the heat that went with a fire."""
    seen, sensor = _SEEN.get(incident.alert_type, (f"{_capital(incident.alert_type.replace('_', ' '))} detected",
                                                   "sensor"))
    room = room_of(incident, device)
    if room is None:
        source = f"the {sensor}"
    elif room.lower().startswith(_PLACE_WORDS):
        source = f"the {sensor} {room}"
    else:
        source = f"{_the(room)} {sensor}"
    start = incident.started_at
    end = loss_end(incident, alert, readings)
    if end is None:
        text = f"{seen} by {source} from {clock.at(start)} {clock.loss_day()}, " + _not_over(
            incident, readings, built_at, clock)
    elif clock.local(end).date() == clock.day:
        text = f"{seen} by {source} from {clock.at(start)} to {clock.at(end)} {clock.loss_day()}, " \
               f"{_duration(end - start)}"
    else:
        text = f"{seen} by {source} from {clock.at(start)} {clock.loss_day()} to {clock.at(end)}, " \
               f"{_duration(end - start)}"
    heat = _heat(incident, readings, end or built_at)
    return [text, heat] if heat else [text]


def _not_over(incident: IncidentFacts, readings: Sequence[Reading], built_at: datetime, clock: _Clock) -> str:
    """How far a loss whose alert had not cleared had gone, as far as the readings show."""
    start = incident.started_at
    prepared = f"not cleared when this claim was prepared at {clock.at(built_at)}"
    last = last_detected(incident, readings, until=built_at)
    if last is None:
        return f"{prepared}, {_duration(built_at - start)} after it began"
    return f"last detected at {clock.at(last)}, {_duration(last - start)} after it began, and {prepared}"


def _heat(incident: IncidentFacts, readings: Sequence[Reading], until: datetime) -> str | None:
    """The temperature that went with a fire: its own figure, or the overheating alert open beside the smoke."""
    temperatures = [r.value for r in readings
                    if r.metric == _TEMPERATURE_METRIC and incident.started_at <= r.ts <= until]
    rule_evidence = incident.evidence.get("readings")
    peak = rule_evidence.get("peak") if isinstance(rule_evidence, Mapping) else None
    if incident.alert_type == "overheat" and isinstance(peak, int | float):
        temperatures.append(peak)
    up_to = f"up to {_number(max(temperatures))} °C" if temperatures else None
    if incident.alert_type == "overheat":
        return up_to
    partners = incident.evidence.get("with_open_alerts")
    if incident.kind == "fire" and isinstance(partners, Mapping) and "overheat" in partners:
        return "the same device also measured overheating" + (f" ({up_to})" if up_to else "")
    return None


def _fall(incident: IncidentFacts, readings: Sequence[Reading], clock: _Clock) -> list[str]:
    """The fall, and whether the member got up: the rule's quiet time, then the next steps the readings show."""
    fall_at = incident.started_at
    what = "A fall" if incident.alert_type == "fall" else f"An accident ({incident.alert_type.replace('_', ' ')})"
    text = f"{what} detected by the member's wearable at {clock.at(fall_at)} {clock.loss_day()}"
    rule_evidence = _mapping(incident.evidence.get("readings"))
    quiet_s = rule_evidence.get("quiet_s", _mapping(incident.evidence.get("parameters")).get("quiet_s"))
    if not isinstance(quiet_s, int | float) or rule_evidence.get("activity_within_quiet") != 0:
        return [text]
    text += f", with no steps in the {_duration(timedelta(seconds=quiet_s))} after it (the member did not get up)"
    quiet_end = fall_at + timedelta(seconds=quiet_s)
    after = [r for r in readings if r.ts > quiet_end]
    moved = min((r.ts for r in after if r.metric == STEPS_METRIC and r.value > 0), default=None)
    if moved is not None:
        return [text, f"steps were next counted at {clock.at(moved)}"]
    if after:
        return [text, f"no steps were counted after it up to {clock.at(max(r.ts for r in after))}"]
    return [text]


def _acknowledged(alert: AlertRecord | None, clock: _Clock) -> str | None:
    if alert is None or alert.acknowledged_at is None:
        return None
    return f"the alert was acknowledged by {actor_words(alert.acknowledged_by)} at {clock.at(alert.acknowledged_at)}"


def _closed(alert: AlertRecord | None, clock: _Clock) -> str | None:
    """What was done, from the alert's outcome and the history entry that recorded it (who and when)."""
    if alert is None or alert.outcome is None:
        return None
    words = OUTCOME_WORDS.get(alert.outcome, alert.outcome.replace("_", " "))
    entry = next((e for e in reversed(alert.history) if e.get("action") == "resolved" and e.get("outcome")), None)
    by = entry.get("by") if entry else None
    at = _moment(entry.get("at")) if entry else None
    at = at or alert.resolved_at
    if by is None or at is None:
        return f"the alert was closed: {words}"
    if actor_words(by) == "the member" and alert.outcome == "member_ok":
        return f"the member said they were OK at {clock.at(at)}"
    return f"{actor_words(by)} recorded at {clock.at(at)} that {words}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(span: timedelta) -> str:
    """`40 seconds`, `25 minutes`, `2 hours 5 minutes`."""
    seconds = max(0, round(span.total_seconds()))
    if seconds < 90:
        return _plural(seconds, "second")
    minutes = round(seconds / 60)
    if minutes < 60:
        return _plural(minutes, "minute")
    hours, minutes = divmod(minutes, 60)
    return _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _date(day: date) -> str:
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def _the(room: str) -> str:
    return room if room.lower().startswith("the ") else f"the {room}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
