"""SQL the API and the claims bridge share: a claim's status changes and what each one sets off.

A status change, the history entry that records it, the member's notice about it and any task it makes
are written in the caller's transaction, so none is ever there without the others. Confirming a claim
writes its delivery outbox row in the same way. The decisions are `vigil.claims.lifecycle`'s; the
words are `vigil.claims.notices`'.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from vigil.alerting.messages import Message
from vigil.alerting.quiet_hours import QuietHours, parse_quiet_hours, quiet_until
from vigil.alerting.tips import load_tips
from vigil.channels import CLAIM_DELIVERIES_CHANNEL, CLAIM_NOTICES_CHANNEL
from vigil.claims import lifecycle, notices
from vigil.claims.building import submission_body
from vigil.claims.followups import after_payment, follow_up_due
from vigil.settings import Settings
from vigil.storage.rows import fetch_one

# Call tasks are keyed by the history entry they tell about; the request to confirm is entry 0.
_CONFIRM_REQUEST_SEQ = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimSettings:
    """What claim storage needs of the settings."""

    public_url: str
    webhook_configured: bool
    give_up_s: int
    reminder_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ClaimSettings:
        return cls(public_url=settings.public_url, webhook_configured=settings.claims_webhook_url is not None,
                   give_up_s=settings.claims_give_up_s, reminder_s=settings.claim_reminder_s)


_CLAIM = """
SELECT c.id::text AS id, c.incident_id::text AS incident_id, c.member_id, c.alert_id::text AS alert_id, c.device_id,
       c.type, c.line, c.policy_number, c.status, c.loss_at, c.green_channel, c.document, c.evidence_digest,
       c.insurer_claim_number, c.status_history, c.confirmed_at, c.confirmed_by, c.submitted_at, c.created_at,
       c.updated_at, m.care_manager_id, m.name AS member_name, m.timezone AS member_timezone,
       i.event->>'alert_type' AS alert_type
FROM claims c LEFT JOIN members m ON m.id = c.member_id LEFT JOIN incidents i ON i.id = c.incident_id
"""
_MEMBER = """
SELECT m.id, m.name, m.timezone, m.consent, m.contact_by_call, m.quiet_hours, m.outreach_urls, m.care_manager_id
FROM members m WHERE m.id = %s
"""


class ClaimChange(Protocol):
    """A status change someone asks for (`confirm_claim`, `send_claim_again`): `StatusRefused` when not allowed."""

    async def __call__(self, conn: AsyncConnection, claim_id: str, *, by: str, now: datetime,
                       config: ClaimSettings) -> dict[str, Any]: ...


async def get_claim(conn: AsyncConnection, claim_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The claim with its member's name, zone and care manager; `lock` holds it for a status change."""
    query = _CLAIM + " WHERE c.id = %s" + (" FOR UPDATE OF c" if lock else "")
    return await fetch_one(conn, query, (claim_id,))


async def find_claim_by_token(conn: AsyncConnection, token: str) -> dict[str, Any] | None:
    """The claim a member's confirmation link is for, or None for a link that was never made."""
    return await fetch_one(conn, _CLAIM + " JOIN claim_tokens t ON t.claim_id = c.id WHERE t.token_sha256 = %s",
                           (_token_digest(token),))


async def confirm_claim(
    conn: AsyncConnection, claim_id: str, *, by: str, now: datetime, config: ClaimSettings
) -> dict[str, Any]:
    """Confirm a pre-filled claim and queue its delivery; `StatusRefused` when its status does not allow it.

    Without an insurer endpoint the delivery row is `held`: the claim stays in Vigil until one is set.
    """
    claim = await _locked(conn, claim_id)
    change = lifecycle.confirm(claim["status"], by=by, now=now)
    updated = await _apply(conn, claim, change, now, confirmed_at=now, confirmed_by=by)
    body = submission_body(claim["document"], confirmed_by=by, confirmed_at=now)
    await conn.execute(
        "INSERT INTO claim_deliveries (claim_id, body, status, next_attempt_at, give_up_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (claim_id) DO NOTHING",
        (claim_id, body, "pending" if config.webhook_configured else "held", now,
         now + timedelta(seconds=config.give_up_s)))
    await conn.execute(f"NOTIFY {CLAIM_DELIVERIES_CHANNEL}")
    return updated


async def request_confirmation(conn: AsyncConnection, claim_id: str, *, now: datetime, config: ClaimSettings) -> str:
    """Make the member's one-tap link and queue the request to confirm, and one reminder; the raw token.

    The reminder is dropped by the sender if the claim is no longer pre-filled when it falls due.
    """
    claim = await _locked(conn, claim_id)
    token = secrets.token_urlsafe(24)
    await conn.execute("INSERT INTO claim_tokens (token_sha256, claim_id) VALUES (%s, %s)",
                       (_token_digest(token), claim_id))
    link = f"{config.public_url}/c/{token}"
    member = await fetch_one(conn, _MEMBER, (claim["member_id"],))
    if member is None:
        return token
    view, first = _view(claim), _first_name(member["name"])
    request = notices.confirm_request(view, first_name=first, timezone=member["timezone"], link=link)
    await _tell_member(conn, claim, member, "confirm_request", _CONFIRM_REQUEST_SEQ, request, now,
                       call_reason=notices.call_reason(view, status="prefilled", member_name=member["name"],
                                                   timezone=member["timezone"]))
    reminder = notices.confirm_reminder(view, first_name=first, timezone=member["timezone"], link=link)
    await _queue_notice(conn, claim, member, "confirm_reminder", _CONFIRM_REQUEST_SEQ, reminder,
                        now + timedelta(seconds=config.reminder_s))
    return token


async def send_claim_again(
    conn: AsyncConnection, claim_id: str, *, by: str, now: datetime, config: ClaimSettings
) -> dict[str, Any]:
    """Deliver a `failed` claim again, from a fresh give-up clock and backoff; `StatusRefused` otherwise.

    The same stored bytes go out under the same key: to the insurer it is still one claim.
    """
    claim = await _locked(conn, claim_id)
    change = lifecycle.send_again(claim["status"], by=by, now=now)
    updated = await _apply(conn, claim, change, now)
    await conn.execute(
        "UPDATE claim_deliveries SET status = %s, attempts = 0, next_attempt_at = %s, lease_until = NULL,"
        " give_up_at = %s WHERE claim_id = %s",
        ("pending" if config.webhook_configured else "held", now, now + timedelta(seconds=config.give_up_s),
         claim_id))
    await conn.execute(f"NOTIFY {CLAIM_DELIVERIES_CHANNEL}")
    return updated


async def record_delivered(conn: AsyncConnection, claim_id: str, *, now: datetime) -> None:
    """The insurer took the claim (a 2xx): the delivery is done and the claim is `submitted`."""
    claim = await _locked(conn, claim_id)
    await conn.execute("UPDATE claim_deliveries SET status = 'delivered', delivered_at = %s, lease_until = NULL,"
                       " last_error = NULL WHERE claim_id = %s", (now, claim_id))
    change = lifecycle.delivered(claim["status"], now=now)
    if change is not None:
        updated = await _apply(conn, claim, change, now, submitted_at=now)
        await _tell_status(conn, updated, change, now)


async def record_gave_up(conn: AsyncConnection, claim_id: str, *, now: datetime, reason: str) -> None:
    """Delivery failed until its give-up time: the claim is `failed`, the member told, the care manager tasked."""
    claim = await _locked(conn, claim_id)
    await conn.execute("UPDATE claim_deliveries SET status = 'failed', lease_until = NULL, last_error = %s"
                       " WHERE claim_id = %s", (reason, claim_id))
    change = lifecycle.gave_up(claim["status"], now=now, reason=reason)
    if change is None:
        return
    updated = await _apply(conn, claim, change, now)
    # First, so that it is the one call task of this change: the member's own (when they cannot be
    # messaged) would say less.
    seq = len(updated["status_history"]) - 1
    await _task(conn, updated, "call", seq, now,
                f"The {_kind_words(updated['type'])} claim of {updated['member_name'] or updated['member_id']} "
                f"(policy {updated['policy_number']}) could not be delivered to the insurer: {reason}. "
                "Send it to the insurer another way and tell the member.")
    await _tell_status(conn, updated, change, now)


async def record_insurer_answer(
    conn: AsyncConnection,
    claim_id: str,
    *,
    status: str,
    insurer_claim_number: str | None,
    note: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Apply the insurer's answer and tell the member; the same answer twice changes nothing.

    `StatusRefused` when the claim's status does not allow the answer. On `paid` the service goes on:
    follow-up tasks for the care manager and, after a home loss, the prevention tip.
    """
    claim = await _locked(conn, claim_id)
    history = claim["status_history"] or []
    change = lifecycle.insurer_answer(claim["status"], status=status, insurer_claim_number=insurer_claim_number,
                                      note=note, now=now, known_number=claim["insurer_claim_number"],
                                      last_note=history[-1].get("note") if history else None)
    if change is None:
        return claim
    updated = await _apply(conn, claim, change, now)
    await _tell_status(conn, updated, change, now)
    if change.status == "paid":
        await _after_payment(conn, updated, now)
    return updated


async def _locked(conn: AsyncConnection, claim_id: str) -> dict[str, Any]:
    claim = await get_claim(conn, claim_id, lock=True)
    if claim is None:
        raise LookupError(f"no claim has id {claim_id!r}")
    return claim


async def _apply(
    conn: AsyncConnection, claim: dict[str, Any], change: lifecycle.StatusChange, now: datetime, **columns: Any
) -> dict[str, Any]:
    sets = ", ".join(f"{name} = %({name})s" for name in columns)
    await conn.execute(
        "UPDATE claims SET status = %(status)s, status_history = status_history || %(entry)s,"
        " insurer_claim_number = coalesce(%(number)s, insurer_claim_number), updated_at = %(now)s"
        + (f", {sets}" if sets else "") + " WHERE id = %(id)s",
        {"status": change.status, "entry": Jsonb([change.entry]), "number": change.insurer_claim_number,
         "now": now, "id": claim["id"], **columns})
    updated = await get_claim(conn, claim["id"])
    assert updated is not None  # locked by this transaction
    return updated


async def _tell_status(conn: AsyncConnection, claim: dict[str, Any], change: lifecycle.StatusChange,
                       now: datetime) -> None:
    if not change.tell_member:
        return
    member = await fetch_one(conn, _MEMBER, (claim["member_id"],))
    if member is None:
        return
    view = _view(claim)
    message = notices.status_notice(view, status=change.status, note=change.entry.get("note"),
                                    first_name=_first_name(member["name"]), timezone=member["timezone"])
    seq = len(claim["status_history"]) - 1
    await _tell_member(conn, claim, member, "status", seq, message, now,
                       call_reason=notices.call_reason(view, status=change.status, member_name=member["name"],
                                                   note=change.entry.get("note"), timezone=member["timezone"]))


async def _after_payment(conn: AsyncConnection, claim: dict[str, Any], now: datetime) -> None:
    member = await fetch_one(conn, _MEMBER, (claim["member_id"],))
    timezone = member["timezone"] if member else "UTC"
    alert_type = claim["alert_type"] or ""
    seq = len(claim["status_history"]) - 1
    tips = load_tips()
    for index, follow_up in enumerate(after_payment(kind=claim["type"], alert_type=alert_type)):
        await _task(conn, claim, "claim_follow_up", index, follow_up_due(now, timezone), follow_up.reason)
        tip = tips.get(follow_up.tip_for) if follow_up.tip_for else None
        if tip is not None and member is not None and _may_message(member):
            message = notices.tip_notice(_view(claim), tip=tip, first_name=_first_name(member["name"]),
                                         timezone=timezone)
            await _queue_notice(conn, claim, member, "tip", seq, message, follow_up_due(now, timezone))


async def _tell_member(conn: AsyncConnection, claim: dict[str, Any], member: dict[str, Any], purpose: str, seq: int,
                       message: Message, now: datetime, *, call_reason: str) -> None:
    """Message the member through each of their channels; a call task when they cannot be messaged.

    A member who does not use apps (`contact_by_call`), has withheld outreach consent or has no channel
    still hears about their claim: from their care manager.
    """
    due = quiet_until(_quiet(member), member["timezone"], now) or now
    sent = await _queue_notice(conn, claim, member, purpose, seq, message, due) if _may_message(member) else 0
    if member["contact_by_call"] or not sent:
        await _task(conn, claim, "call", seq, due, call_reason)


async def _queue_notice(conn: AsyncConnection, claim: dict[str, Any], member: dict[str, Any], purpose: str, seq: int,
                        message: Message, due: datetime) -> int:
    """One notice row per channel of the member (not more than once per claim, purpose and change)."""
    if not _may_message(member):
        return 0
    urls = [url for url in member["outreach_urls"] or () if isinstance(url, str) and url]
    for url in urls:
        await conn.execute(
            "INSERT INTO claim_notices (claim_id, purpose, seq, member_id, channel, target, target_digest, title,"
            " body, next_attempt_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (claim_id, purpose, seq, target_digest) DO NOTHING",
            (claim["id"], purpose, seq, member["id"], urlsplit(url).scheme.lower(), url,
             hashlib.sha256(url.encode()).hexdigest(), message.title, message.body, due))
    if urls:
        await conn.execute(f"NOTIFY {CLAIM_NOTICES_CHANNEL}")
    return len(urls)


async def _task(conn: AsyncConnection, claim: dict[str, Any], kind: str, step: int, due: datetime,
                reason: str) -> None:
    await conn.execute(
        "INSERT INTO tasks (kind, claim_id, step, member_id, care_manager_id, due_at, reason)"
        " SELECT %s, %s, %s, m.id, m.care_manager_id, %s, %s FROM members m WHERE m.id = %s"
        " ON CONFLICT (claim_id, kind, step) WHERE claim_id IS NOT NULL DO NOTHING",
        (kind, claim["id"], step, due, reason, claim["member_id"]))


def _may_message(member: dict[str, Any]) -> bool:
    consent = member["consent"] if isinstance(member["consent"], dict) else {}
    return consent.get("outreach") is True


def _quiet(member: dict[str, Any]) -> QuietHours | None:
    data = member["quiet_hours"]
    return parse_quiet_hours(data) if isinstance(data, dict) else None


def _view(claim: dict[str, Any]) -> notices.ClaimView:
    document = claim["document"] or {}
    room = (document.get("location") or {}).get("room")
    return notices.ClaimView(id=claim["id"], type=claim["type"], loss_at=claim["loss_at"], room=room,
                             policy_number=claim["policy_number"], insurer_claim_number=claim["insurer_claim_number"],
                             alert_type=claim["alert_type"])


def _first_name(name: str | None) -> str:
    parts = (name or "").split()
    return parts[0] if parts else ""


def _kind_words(kind: str) -> str:
    return {"water_damage": "water damage", "fire": "fire", "accident": "accident"}.get(kind, kind)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
