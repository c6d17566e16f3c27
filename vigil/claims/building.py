"""The claim document: a first notice of loss filled in from what Vigil saw, with unknowns marked as unknown.

One claim per incident by construction (`claim_id`); `submission_body` is the exact bytes the insurer
receives, built once when the claim is confirmed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from vigil.claims.description import describe, in_room, local_day, room_of, the_room
from vigil.claims.evidence import encode, loss_end
from vigil.claims.facts import AlertRecord, DeviceFacts, IncidentFacts, MemberFacts, Reading
from vigil.claims.green_channel import age_on, green_channel
from vigil.timefmt import utc_text

SCHEMA = "vigil.claim/v1"
UNKNOWN = "unknown"
_CLAIM_NS = uuid.UUID("c1a1d0c5-7e3b-4f6a-8d2e-5b9f0a4c3e21")


def claim_id(incident_id: str) -> str:
    """The claim's id, derived from its incident's: a redelivered incident can only find the same claim."""
    return str(uuid.uuid5(_CLAIM_NS, incident_id))


def emergency_help(alert: AlertRecord | None) -> bool | None:
    """Whether emergency help was sent, from the outcome a person gave when resolving the alert; None while
    nobody has said (not resolved yet, or closed by its condition clearing, which records no outcome)."""
    if alert is None or alert.outcome is None:
        return None
    return alert.outcome == "emergency_dispatched"


def property_damaged(kind: str, room: str | None) -> list[str]:
    """What a loss of this kind in this room has likely damaged; nothing for an accident."""
    if kind == "water_damage":
        where = in_room(room) if room else "where the water was found"
        return [f"floor coverings {where}", f"skirting and lower walls {where}",
                f"furniture and appliances standing {where}"]
    if kind == "fire":
        place = the_room(room) if room else "the room where the fire started"
        return [f"{place} and its contents", "smoke damage in adjacent rooms"]
    return []


def build_claim(*, incident: IncidentFacts, member: MemberFacts, device: DeviceFacts, alert: AlertRecord | None,
                checks: Mapping[str, Any], evidence_digest: str, public_url: str, built_at: datetime,
                readings: Sequence[Reading] = ()) -> dict[str, Any]:
    """The claim document (CONTRACT §3), JSON data with times as RFC 3339 text.

    `readings` (the evidence window's) place the end of the loss on the last reading that showed it.
    """
    cid = claim_id(incident.id)
    room = room_of(incident, device)
    ended_at = loss_end(incident, alert, readings)
    helped = emergency_help(alert)
    reason = green_channel(kind=incident.kind, alert_type=incident.alert_type, emergency_help=helped,
                           age_at_loss=age_on(member.birth_date, local_day(incident.started_at, member.timezone)))
    document: dict[str, Any] = {
        "id": cid,
        "incident_id": incident.id,
        "member_id": member.id,
        "alert_id": incident.alert_id,
        "device_id": incident.device_id,
        "type": incident.kind,
        "line": incident.covered_by,
        "policy_number": member.policy_number,
        "loss_at": utc_text(incident.started_at),
        "detected_at": utc_text(incident.detected_at),
        "ended_at": utc_text(ended_at) if ended_at is not None else None,
        "duration_s": (ended_at - incident.started_at).total_seconds() if ended_at is not None else None,
        "reported_at": utc_text(built_at),
        "location": {"address": member.address, "room": room},
        "insured": {
            "name": member.name, "address": member.address, "phone": member.phone, "email": member.email,
            "birth_date": member.birth_date.isoformat() if member.birth_date else None,
        },
        "description": describe(incident=incident, device=device, alert=alert, timezone=member.timezone,
                                built_at=built_at, readings=readings),
        "property_damaged": property_damaged(incident.kind, room),
        # A water leak injures nobody by itself; whether a fall or a fire did, nobody has said yet.
        "injuries": "not applicable" if incident.kind == "water_damage" else UNKNOWN,
    }
    if incident.kind == "fire":
        document["fire_service_attended"] = UNKNOWN
    document["emergency_help_dispatched"] = UNKNOWN if helped is None else helped
    document["acknowledged"] = (
        {"by": alert.acknowledged_by, "at": utc_text(alert.acknowledged_at)}
        if alert is not None and alert.acknowledged_at is not None else None
    )
    document["unknowns"] = [name for name, value in document.items() if value == UNKNOWN]
    document["green_channel"] = reason is not None
    document["green_channel_reason"] = reason
    document["evidence"] = {"url": f"{public_url.rstrip('/')}/api/v1/claims/{cid}/evidence",
                            "digest": evidence_digest, "checks": dict(checks)}
    document["reported_by"] = "vigil"
    return document


def submission_body(document: Mapping[str, Any], *, confirmed_by: str, confirmed_at: datetime) -> bytes:
    """The exact bytes delivered to the insurer: the document, who confirmed it and when, and its schema."""
    return encode({**document, "confirmation": {"by": confirmed_by, "at": utc_text(confirmed_at)}, "schema": SCHEMA})
