"""The words a member reads about their claim, and the care manager's call note for members who do not use apps.

Written for someone in the worst week of their year: short, kind, concrete, the one thing to do next,
times in the member's time zone. The loss is named as people name it ("the water damage in your
kitchen", "your fall on 22 November"); nothing is said that the member does not already know, so no
readings and no health figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.alerting.messages import Message
from vigil.alerting.tips import Tip

SIGNATURE = "— Vigil, for your insurer"
BUTTON = "Send my claim"  # the one button of the member's /c/{token} page

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
# A room that already says where ("under the stairs") takes no "in your".
_PLACE_WORDS = ("in ", "at ", "on ", "by ", "near ", "under ", "behind ", "outside")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimView:
    """What the words need of a claim. `alert_type` tells a fall from another accident."""

    id: str
    type: str
    loss_at: datetime
    room: str | None
    policy_number: str
    insurer_claim_number: str | None = None
    alert_type: str | None = None


def confirm_request(claim: ClaimView, *, first_name: str, timezone: str, link: str) -> Message:
    """The claim is filled in: one tap on `link` sends it."""
    zone, zone_name = _zone(timezone)
    body = [
        f"Hello {first_name},",
        f"We are sorry about {_subject(claim, 'your')} {_when(claim.loss_at, zone, zone_name)}.",
        f"We have filled in your insurance claim for you (policy {claim.policy_number}) with what Vigil recorded. "
        "There is no form to fill in.",
        f'To send it to your insurer, open this link and tap "{BUTTON}": {link}',
        "Nothing is sent until you do. If something in it looks wrong, call your care manager first.",
        SIGNATURE,
    ]
    return Message(title="Vigil: your claim is ready, one tap sends it", body="\n\n".join(body))


def confirm_reminder(claim: ClaimView, *, first_name: str, timezone: str, link: str) -> Message:
    """The one reminder of a claim still waiting for the member's go-ahead."""
    zone, zone_name = _zone(timezone)
    body = [
        f"Hello {first_name},",
        f"Your insurance claim for {_subject(claim, 'your')} {_when(claim.loss_at, zone, zone_name)} is filled in "
        "and waiting for you. It has not been sent yet.",
        f'To send it to your insurer, open this link and tap "{BUTTON}": {link}',
        "This is the only reminder we will send. If you have a question about the claim, your care manager can "
        "help.",
        SIGNATURE,
    ]
    return Message(title="Vigil: your claim is waiting for you", body="\n\n".join(body))


def status_notice(claim: ClaimView, *, status: str, note: str | None, first_name: str, timezone: str) -> Message:
    """The claim moved to `status`: what it means for the member and what, if anything, to do."""
    zone, _ = _zone(timezone)
    what = f"your claim for {_named(claim, 'your', zone)}"
    number = claim.insurer_claim_number
    note = note.strip() if note and note.strip() else None
    match status:
        case "submitted":
            title = "Vigil: your claim has been sent"
            lines = [f"{_capital(what)} has reached your insurer (policy {claim.policy_number}).",
                     "You do not need to do anything now: we will tell you as soon as they answer."]
        case "accepted":
            title = f"Vigil: your claim is accepted; number {number}" if number else "Vigil: your claim is accepted"
            lines = [f"Good news: your insurer has accepted {what}.",
                     f"Their claim number is {number}; keep it for when you speak to them." if number
                     else "They will give you their claim number.",
                     *_they_wrote(note),
                     "You do not need to do anything now; they will contact you about the next steps."]
        case "needs_info":
            title = "Vigil: your insurer needs a little more information"
            lines = [f"Your insurer needs more information for {what}{_their_number(number)}."]
            if note:
                lines += [f"What they asked for: {note}",
                          "Your care manager can help you with it; call them if you would like a hand."]
            else:
                lines += ["They will contact you to ask for it; you do not need to do anything until they do.",
                          "If you would like help, call your care manager."]
        case "rejected":
            title = "Vigil: news about your claim"
            lines = [f"Your insurer has not accepted {what}{_their_number(number)}.",
                     *([f"Their reason: {note}"] if note else []),
                     "Please call your care manager: they will go through it with you and help you decide whether "
                     "to ask the insurer to look at it again."]
        case "paid":
            title = "Vigil: your claim is paid"
            lines = [f"Your insurer has paid {what}{_their_number(number)}: the money is on its way to you.",
                     "Your care manager will check in with you in the next days to see how you are getting on."]
        case "failed":
            title = "Vigil: we could not send your claim yet"
            lines = [f"We could not reach your insurer to send {what}, although we kept trying.",
                     "Nothing is lost: your care manager will call you to send it another way. You do not need to "
                     "do anything now."]
        case _:
            raise ValueError(f"no notice for a claim that becomes {status!r}")
    return Message(title=title, body="\n\n".join([f"Hello {first_name},", *lines, SIGNATURE]))


def tip_notice(claim: ClaimView, *, tip: Tip, first_name: str, timezone: str = "UTC") -> Message:
    """After the payment, one practical step that keeps the loss from happening again."""
    zone, _ = _zone(timezone)
    body = [
        f"Hello {first_name},",
        f"Now that your claim for {_named(claim, 'your', zone)} is paid, here is one thing that helps keep it "
        "from happening again.",
        f"{tip.title}: {tip.text}",
        SIGNATURE,
    ]
    return Message(title=f"Vigil: {tip.title}", body="\n\n".join(body))


def call_reason(claim: ClaimView, *, status: str, member_name: str, note: str | None = None,
                timezone: str = "UTC") -> str:
    """The care manager's call task: tell `member_name` (who does not use apps) what the claim's `status` means.

    `prefilled` is the request to confirm: the care manager can confirm the claim on the member's behalf.
    """
    zone, _ = _zone(timezone)
    claim_of = f"Call {member_name}: their claim for {_named(claim, 'their', zone)} (policy {claim.policy_number})"
    number = claim.insurer_claim_number
    said = f" The insurer wrote: {note.strip()}" if note and note.strip() else ""
    match status:
        case "prefilled":
            return (f"{claim_of} is filled in and waits for their go-ahead. If they want it sent, confirm it on "
                    "their behalf in the console.")
        case "submitted":
            return f"{claim_of} has been sent to the insurer. Nothing is needed from them for now."
        case "accepted":
            given = f" Give them the insurer's claim number, {number}." if number else ""
            return f"{claim_of} is accepted by the insurer.{given}{said}"
        case "needs_info":
            return f"{claim_of}: the insurer needs more information.{said} Help them provide it."
        case "rejected":
            return (f"{claim_of} was rejected by the insurer.{said} Go through it with them and help them decide "
                    "whether to appeal.")
        case "paid":
            return f"{claim_of} is paid: the money is on its way. Ask how they are getting on."
        case "failed":
            return (f"{claim_of} could not be delivered to the insurer. Tell them nothing is lost, and send it "
                    "another way (the claim and its evidence are in the console).")
    raise ValueError(f"no call for a claim that becomes {status!r}")


def _subject(claim: ClaimView, whose: str) -> str:
    """The loss as people say it: "the water damage in your kitchen", "the fire at your home", "your fall"."""
    if claim.type == "accident":
        # A wearable's room says where it is worn, not where the member was: no place for an accident.
        return f"{whose} fall" if claim.alert_type == "fall" else f"{whose} accident"
    what = {"water_damage": "the water damage", "fire": "the fire"}.get(claim.type, f"the {claim.type}")
    room = (claim.room or "").strip()
    if not room:
        return f"{what} at {whose} home"
    if room.lower().startswith(_PLACE_WORDS):
        return f"{what} {room}"
    return f"{what} in {whose} {room.removeprefix('the ').removeprefix('The ')}"


def _named(claim: ClaimView, whose: str, zone: tzinfo) -> str:
    """`_subject`, with the day for an accident ("your fall on 22 November"): a person may have more than one."""
    subject = _subject(claim, whose)
    if claim.type != "accident":
        return subject
    local = _aware(claim.loss_at).astimezone(zone)
    return f"{subject} on {local.day} {_MONTHS[local.month - 1]}"


def _when(moment: datetime, zone: tzinfo, zone_name: str) -> str:
    local = _aware(moment).astimezone(zone)
    return f"on {_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} at {local:%H:%M} ({zone_name})"


def _they_wrote(note: str | None) -> list[str]:
    return [f"They wrote: {note}"] if note else []


def _their_number(number: str | None) -> str:
    return f" (their number {number})" if number else ""


def _zone(name: str) -> tuple[tzinfo, str]:
    try:
        return ZoneInfo(name), name
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        # The zone was checked when the member was registered; a message in UTC beats no message.
        return UTC, "UTC"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
