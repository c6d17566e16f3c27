"""The words of outreach: what was seen, where, when in the recipient's time zone, and the one thing to do.

Each recipient gets no more health data than they need: the member their own figure, the care manager
the key figure, emergency contacts only the kind of event. The per-type wording is one table, `WORDING`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.alerting.facts import AlertFacts, MemberFacts
from vigil.alerting.tips import Tip

Role = Literal["member", "care_manager", "emergency_contact"]

# The figure of an alert from its evidence (`vigil.rules`), in the reader's time zone; None when absent.
Figure = Callable[[Mapping[str, Any], tzinfo], str | None]


@dataclass(frozen=True, slots=True)
class Message:
    """A title and a plain-text body, as Apprise sends them."""

    title: str
    body: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Wording:
    """How to speak of one alert type.

    The `*_do` texts may use {first} and {phone} (the member's), {help} (whom the member can call),
    {device} and {address}.
    """

    kind: str  # the kind of event, the only thing emergency contacts learn of it
    source: str  # what noticed it, as the member reads it
    member_do: str
    contact_do: str
    manager_do: str
    figure: Figure | None = None
    home_hazard: bool = False  # the address helps whoever comes
    asks_ok: bool = True  # "are you OK?" makes sense (not for a flat battery)
    noticed: str = "noticed {kind}"  # what the source did, in the member's message


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    if seconds < 90 * 60:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _means(evidence: Mapping[str, Any]) -> tuple[list[float], int]:
    """The minute means of a sustained rule's window, and how many minutes the window spans."""
    minutes = evidence.get("minutes")
    if not isinstance(minutes, list) or not minutes:
        return [], 0
    means = [m["mean"] for m in minutes if isinstance(m, dict) and isinstance(m.get("mean"), int | float)]
    return means, len(minutes)


def _heart_rate(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
    means, minutes = _means(evidence)
    if not means:
        return None
    # Only the rule that guards against exercise records steps, and it raised: the member was at rest.
    rest = ", at rest" if "steps" in evidence else ""
    return f"heart rate around {round(sum(means) / len(means))} bpm for {_duration(minutes * 60)}{rest}"


def _spo2(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
    means, minutes = _means(evidence)
    if not means:
        return None
    return f"blood oxygen around {round(sum(means) / len(means))} % for {_duration(minutes * 60)}"


def _co(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
    means, minutes = _means(evidence)
    return f"carbon monoxide up to {round(max(means))} ppm over {_duration(minutes * 60)}" if means else None


def _cold(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
    means, minutes = _means(evidence)
    return f"temperature down to {_number(min(means))} °C over {_duration(minutes * 60)}" if means else None


def _peak(template: str) -> Figure:
    def figure(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
        peak = evidence.get("peak")
        return template.format(_number(peak)) if isinstance(peak, int | float) else None
    return figure


def _lasted(what: str) -> Figure:
    def figure(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
        span_s = evidence.get("span_s")
        return f"{what} for {_duration(span_s)}" if isinstance(span_s, int | float) and span_s > 0 else None
    return figure


def _arcing(evidence: Mapping[str, Any], _: tzinfo) -> str | None:
    total, window_s = evidence.get("total"), evidence.get("window_s")
    if not isinstance(total, int | float) or not isinstance(window_s, int | float):
        return None
    return f"{_number(total)} arcing events within {_duration(window_s)}"


def _fall(evidence: Mapping[str, Any], zone: tzinfo) -> str | None:
    fall_at = _moment(evidence.get("fall_at"))
    quiet_s = evidence.get("quiet_s")
    if fall_at is None:
        return None
    after = f", then no movement for {_duration(quiet_s)}" if isinstance(quiet_s, int | float) else ""
    return f"a fall detected at {fall_at.astimezone(zone):%H:%M}{after}"


def _silence(evidence: Mapping[str, Any], zone: tzinfo) -> str | None:
    last = _moment(evidence.get("last_message_at")) or _moment(evidence.get("silent_since"))
    return f"no message since {_day_and_time(last.astimezone(zone))}" if last else None


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_ON_BODY = "your wearable"
_SENSOR = "your sensor"
_OUTSIDE_CALL = ("please call {first} on {phone} to make sure they are out of the home; if you cannot reach "
                 "them, call the emergency number and give the address")

WORDING: dict[str, Wording] = {
    "tachycardia": Wording(
        kind="a very fast heart rate", source=_ON_BODY, figure=_heart_rate,
        member_do="sit down and rest; if you feel chest pain, faint or short of breath, call the emergency "
                  "number now",
        contact_do="please call {first} on {phone} to ask how they feel; if they feel unwell, call the "
                   "emergency number",
        manager_do="call {first} on {phone} to ask how they feel and whether they have taken their medicines",
    ),
    "bradycardia": Wording(
        kind="a very slow heart rate", source=_ON_BODY, figure=_heart_rate,
        member_do="sit or lie down; if you feel faint, dizzy or short of breath, call the emergency number now",
        contact_do="please call {first} on {phone} to ask how they feel; if they feel unwell, call the "
                   "emergency number",
        manager_do="call {first} on {phone} to ask how they feel; faintness or dizziness needs a doctor today",
    ),
    "low_spo2": Wording(
        kind="low blood oxygen", source=_ON_BODY, figure=_spo2,
        member_do="sit upright and breathe slowly; if you are short of breath or confused, call the emergency "
                  "number now",
        contact_do="please call {first} on {phone} to ask how they feel; if they are short of breath or "
                   "confused, call the emergency number",
        manager_do="call {first} on {phone}; breathlessness or confusion needs the emergency number",
    ),
    "fall": Wording(
        kind="a possible fall", source=_ON_BODY, figure=_fall,
        member_do="if you need help, call {help}",
        contact_do="please call {first} on {phone}; if they do not answer, go and check on them if you can, "
                   "or call the emergency number",
        manager_do="call {first} on {phone}; if there is no answer, ask an emergency contact to check on "
                   "them or send help",
    ),
    "device_offline": Wording(
        kind="a device that stopped reporting", source="your device", figure=_silence, asks_ok=False,
        noticed="stopped reporting",
        member_do="check that {device} is switched on, charged and near the home hub",
        contact_do="please call {first} on {phone} to check that all is well",
        manager_do="call {first} on {phone} to check that {device} is switched on and charged",
    ),
    "low_battery": Wording(
        kind="a low battery", source="your device", figure=_peak("battery at {} %"), asks_ok=False,
        noticed="is running low on battery",
        member_do="charge {device} or change its batteries today",
        contact_do="please remind {first} to charge {device} or change its batteries",
        manager_do="remind {first} ({phone}) to charge {device} or change its batteries",
    ),
    "smoke": Wording(
        kind="smoke", source=_SENSOR, figure=_lasted("smoke detected"), home_hazard=True,
        member_do="get out of the home now, close the doors behind you, and call the emergency number from "
                  "outside",
        contact_do=_OUTSIDE_CALL,
        manager_do="call {first} on {phone} to make sure they are out; if there is no answer, call the "
                   "emergency services for {address}",
    ),
    "co": Wording(
        kind="carbon monoxide", source=_SENSOR, figure=_co, home_hazard=True,
        member_do="get everyone outside into fresh air now and call the emergency number",
        contact_do=_OUTSIDE_CALL,
        manager_do="call {first} on {phone} to make sure they are outside in fresh air; if there is no "
                   "answer, call the emergency services for {address}",
    ),
    "gas_leak": Wording(
        kind="a gas leak", source=_SENSOR, figure=_peak("gas at {} % of the lower explosive limit"),
        home_hazard=True,
        member_do="do not switch anything on or off; leave the home and call the gas emergency line from outside",
        contact_do="please call {first} on {phone} to make sure they have left the home; if you cannot reach "
                   "them, call the emergency number and give the address",
        manager_do="call {first} on {phone} to make sure they have left; if there is no answer, call the gas "
                   "emergency line and the emergency services for {address}",
    ),
    "water_leak": Wording(
        kind="a water leak", source=_SENSOR, figure=_lasted("water detected"), home_hazard=True,
        member_do="turn off the water at the main valve if you can do so safely",
        contact_do="please call {first} on {phone}; they may need a hand to turn off the water and limit the "
                   "damage",
        manager_do="call {first} on {phone} to check that the water is off, and arrange a plumber if needed",
    ),
    "freeze_risk": Wording(
        kind="a risk of frozen pipes", source=_SENSOR, figure=_cold, home_hazard=True,
        member_do="turn the heating up and open the doors to unheated rooms so that warm air reaches the pipes",
        contact_do="please call {first} on {phone} to check that the heating is on and they are warm enough",
        manager_do="call {first} on {phone} to check that the heating works and they are warm enough",
    ),
    "overheat": Wording(
        kind="a very high temperature", source=_SENSOR, figure=_peak("temperature up to {} °C"), home_hazard=True,
        member_do="switch off heaters and appliances near the sensor if it is safe to, and leave the room if "
                  "you smell burning",
        contact_do="please call {first} on {phone} to make sure they are safe; if you cannot reach them, call "
                   "the emergency number and give the address",
        manager_do="call {first} on {phone} to make sure they are safe; if there is no answer, call the "
                   "emergency services for {address}",
    ),
    "electrical_arcing": Wording(
        kind="electrical arcing", source=_SENSOR, figure=_arcing, home_hazard=True,
        member_do="unplug the appliances near the sensor if it is safe to, and do not use that socket until an "
                  "electrician has checked it",
        contact_do="please call {first} on {phone} to make sure they are safe and do not use that socket",
        manager_do="call {first} on {phone} and arrange for an electrician to check the wiring",
    ),
}

_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_PLACE_WORDS = ("in ", "at ", "on ", "by ", "near ", "under ", "upstairs", "downstairs", "outside")


def wording(alert_type: str) -> Wording:
    """The table's wording, or plain generic words for a type the table does not know."""
    found = WORDING.get(alert_type)
    if found is not None:
        return found
    return Wording(kind=f"a {alert_type.replace('_', ' ')} alert", source="your device",
                   member_do="call {help} if you need help",
                   contact_do="please call {first} on {phone} to check that all is well",
                   manager_do="call {first} on {phone} to check that all is well")


def compose(*, to_role: Role, alerts: Sequence[AlertFacts], member: MemberFacts, recipient_timezone: str,
            told: Sequence[str], reply_url: str | None, console_url: str | None) -> Message:
    """One message about one or more (grouped) alerts of `member` for one recipient."""
    if not alerts:
        raise ValueError("a message needs at least one alert")
    zone, zone_name = _zone(recipient_timezone)
    ordered = sorted(alerts, key=lambda a: (_SEVERITY_RANK.get(a.severity, 9), a.triggered_at))
    if to_role == "member":
        return _to_member(ordered, member, zone, zone_name, reply_url)
    if to_role == "care_manager":
        return _to_care_manager(ordered, member, zone, zone_name, told, console_url)
    return _to_contact(ordered, member, zone, zone_name, told)


def compose_tip(alert: AlertFacts, member: MemberFacts, tip: Tip) -> Message:
    """The prevention tip sent to the member after an incident, with what it follows."""
    zone, zone_name = _zone(member.timezone)
    words = wording(alert.type)
    body = "\n\n".join((
        f"Hello {_first(member.name)},",
        f"After {words.kind} {_when(alert.triggered_at, zone, zone_name)}, here is one thing that helps "
        "keep it from happening again.",
        f"{tip.title}: {tip.text}",
        "— Vigil, for your insurer",
    ))
    return Message(title=f"Vigil: {tip.title}", body=body)


def _to_member(alerts: Sequence[AlertFacts], member: MemberFacts, zone: tzinfo, zone_name: str,
               reply_url: str | None) -> Message:
    first = alerts[0]
    words = wording(first.type)
    asks_ok = any(wording(a.type).asks_ok for a in alerts)
    if len(alerts) == 1:
        title = f"Vigil: are you OK? We noticed {words.kind}" if asks_ok else f"Vigil: {words.kind}"
        seen = [_capital(_seen_by_member(first, zone, zone_name)) + "."]
    else:
        title = f"Vigil: are you OK? We noticed {len(alerts)} things" if asks_ok \
            else f"Vigil: {len(alerts)} things to check"
        seen = ["We noticed:", *(f"- {_seen_by_member(a, zone, zone_name)}" for a in alerts)]
    lines = [
        f"Hello {_first(member.name)},",
        "\n".join(seen),
        f"What to do now: {_fill(words.member_do, first, member)}.",
    ]
    if asks_ok:
        lines.append("Are you OK?" + (f" Tap to tell us you're OK: {reply_url}" if reply_url else ""))
    elif reply_url:
        lines.append(f"Tap to tell us it is in hand: {reply_url}")
    lines.append("— Vigil, for your insurer")
    return Message(title=title, body="\n\n".join(lines))


def _room(alert: AlertFacts) -> str | None:
    """Where it happened: a home sensor's room; a wearable's `location` says where it is worn, not where
    the member was, so it names no place."""
    return None if wording(alert.type).source == _ON_BODY else alert.location


def _seen_by_member(alert: AlertFacts, zone: tzinfo, zone_name: str) -> str:
    words = wording(alert.type)
    where = _in(_room(alert))
    figure = _figure(alert, zone)
    return (f"{_when(alert.triggered_at, zone, zone_name)} {words.source}{' ' + where if where else ''} "
            f"{words.noticed.format(kind=words.kind)}{f' ({figure})' if figure else ''}")


def _to_care_manager(alerts: Sequence[AlertFacts], member: MemberFacts, zone: tzinfo, zone_name: str,
                     told: Sequence[str], console_url: str | None) -> Message:
    first = alerts[0]
    words = wording(first.type)
    tag = f"[{first.severity.upper()}]"
    what = words.kind if len(alerts) == 1 else f"{len(alerts)} alerts"
    lines = [f"{member.name}:"]
    for alert in alerts:
        figure = _figure(alert, zone)
        lines.append(f"- {wording(alert.type).kind} ({alert.severity}), "
                     f"{_when(alert.triggered_at, zone, zone_name)}"
                     f"{'; ' + figure if figure else ''}; {_manager_place(alert, member)}")
    body = [
        "\n".join(lines),
        _told(told),
        f"Reach {_first(member.name)}: {member.phone or 'no phone number on file'}",
        f"What to do: {_capital(_fill(words.manager_do, first, member))}.",
    ]
    if console_url:
        body.append(f"Open the alert in the console: {console_url}")
    return Message(title=f"Vigil {tag} {member.name}: {what}", body="\n\n".join(body))


def _manager_place(alert: AlertFacts, member: MemberFacts) -> str:
    room = _room(alert)
    place = f"where: {room}" if room else f"device {alert.device_id}"
    if wording(alert.type).home_hazard and member.address:
        place += f", at {member.address}"
    return place


def _to_contact(alerts: Sequence[AlertFacts], member: MemberFacts, zone: tzinfo, zone_name: str,
                told: Sequence[str]) -> Message:
    first = alerts[0]
    words = wording(first.type)
    # Only the kind of event, the room, and the address when it helps whoever comes: no readings.
    seen = [f"{wording(a.type).kind}{_contact_place(a, member)}, {_when(a.triggered_at, zone, zone_name)}"
            for a in alerts]
    body = [
        f"This is Vigil, writing on behalf of {member.name}'s insurer. You are listed as an emergency contact "
        f"of {member.name}.",
        ("We noticed " + seen[0] + ".") if len(seen) == 1 else "We noticed:\n" + "\n".join(f"- {s}" for s in seen),
        _told(told),
        f"What to do: {_capital(_fill(words.contact_do, first, member))}.",
    ]
    return Message(title=f"Vigil: {member.name} may need you ({words.kind})", body="\n\n".join(body))


def _contact_place(alert: AlertFacts, member: MemberFacts) -> str:
    location = _room(alert)
    room = f" ({location})" if location else ""
    if wording(alert.type).home_hazard and member.address:
        return f" at {member.address}{room}"
    return f" {_in(location)}" if location else ""


def _told(told: Sequence[str]) -> str:
    names = [name for name in told if name]
    if not names:
        return "Nobody else has been told yet."
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"Already told: {joined}."


def _figure(alert: AlertFacts, zone: tzinfo) -> str | None:
    figure = wording(alert.type).figure
    if figure is None or not isinstance(alert.evidence, Mapping):
        return None
    try:
        return figure(alert.evidence, zone)
    except (LookupError, TypeError, ValueError, ArithmeticError):
        # Evidence is whatever the rule recorded; a message without the figure beats no message.
        return None


def _fill(template: str, alert: AlertFacts, member: MemberFacts) -> str:
    return template.format(
        first=_first(member.name),
        phone=member.phone or "their usual number",
        help=_help(member),
        device=f"the device in the {alert.location}" if alert.location else f"device {alert.device_id}",
        address=member.address or "their home",
    )


def _help(member: MemberFacts) -> str:
    """Whom the member can call: their care manager, else a contact, else the emergency number."""
    manager = member.care_manager
    if manager is not None and manager.phone:
        return f"your care manager {manager.name} on {manager.phone}"
    for contact in member.emergency_contacts:
        if contact.phone:
            return f"{contact.name} on {contact.phone}"
    return "the emergency number"


def _zone(name: str) -> tuple[tzinfo, str]:
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return UTC, "UTC"


def _when(moment: datetime, zone: tzinfo, zone_name: str) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"on {_day_and_time(moment.astimezone(zone))} ({zone_name})"


def _day_and_time(local: datetime) -> str:
    return f"{local.day} {_MONTHS[local.month - 1]} at {local:%H:%M}"


def _in(location: str | None) -> str:
    if not location:
        return ""
    if location.lower().startswith(_PLACE_WORDS):
        return location
    # "the kitchen" is a room like "kitchen": it still needs its "in".
    return f"in {location}" if location.lower().startswith("the ") else f"in the {location}"


def _first(name: str) -> str:
    return name.split()[0] if name.strip() else name


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
