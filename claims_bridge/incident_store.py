"""The incidents table and what the builder reads around an incident: SQL only, rows mapped to the core's facts.

Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from vigil.channels import INCIDENTS_CHANNEL
from vigil.claims.facts import AlertRecord, DeviceFacts, IncidentFacts, MemberFacts, OutreachRecord, Reading
from vigil.events import IncidentOpened
from vigil.timefmt import utc_text

# The wait runs from when the incident was found (`detected_at_ms`, wall time), so a bridge catching
# up after an outage builds at once what has long settled; never from a moment later than now, so a
# producer's clock running ahead cannot postpone a claim.
_INSERT = """
INSERT INTO incidents (id, kind, covered_by, member_id, device_id, alert_id, location, started_at, detected_at,
                       event, build_due_at)
VALUES (%(id)s, %(kind)s, %(covered_by)s, %(member_id)s, %(device_id)s, %(alert_id)s, %(location)s,
        %(started_at)s, %(detected_at)s, %(event)s,
        least(%(detected_at)s::timestamptz, now()) + %(settle_s)s * interval '1 second')
ON CONFLICT (id) DO NOTHING
RETURNING id::text
"""
# Settled: the alert has ended (cleared or resolved), or the wait is over, also when the alert row
# never arrived. Oldest first; no lock here, each incident is locked on its own (`lock_undecided`).
_BUILDABLE = """
SELECT i.id::text
FROM incidents i
LEFT JOIN alerts a ON a.id = i.alert_id
WHERE i.decided_at IS NULL
  AND (a.cleared_at IS NOT NULL OR a.resolved_at IS NOT NULL OR i.build_due_at <= now())
ORDER BY i.build_due_at, i.id
LIMIT %(limit)s
"""
_LOCK = """
SELECT id::text, kind, covered_by, member_id, device_id, alert_id::text, location, started_at, detected_at, event
FROM incidents
WHERE id = %s AND decided_at IS NULL
FOR UPDATE SKIP LOCKED
"""
_DECIDE = """
UPDATE incidents SET decided_at = %(at)s, decision = %(decision)s, claim_id = %(claim_id)s
WHERE id = %(id)s AND decided_at IS NULL
"""
_MEMBER = """
SELECT id, name, birth_date, phone, email, address, timezone, policy, consent FROM members WHERE id = %s
"""
_DEVICE = "SELECT device_id, kind, location, report_interval_s, created_at FROM devices WHERE device_id = %s"
_ALERT_COLUMNS = """id::text, type, severity, status, triggered_at, raised_at, cleared_at, resolved_at,
                    acknowledged_at, acknowledged_by, outcome, history"""
_ALERT = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s"
# The member's alerts that were active at some moment of the window, the incident's own among them.
_ALERTS_IN_WINDOW = f"""
SELECT {_ALERT_COLUMNS} FROM alerts
WHERE member_id = %(member_id)s
  AND (id = %(alert_id)s
       OR (triggered_at <= %(to)s AND coalesce(cleared_at, resolved_at, 'infinity') >= %(from)s))
ORDER BY triggered_at, id
LIMIT %(limit)s
"""
_READINGS = """
SELECT ts, metric, value, seq FROM readings
WHERE device_id = %(device_id)s AND ts >= %(from)s AND ts <= %(to)s
ORDER BY ts, metric, seq
LIMIT %(limit)s
"""
_OUTREACH = """
SELECT alert_id::text, step, to_role, channel, status, reason, attempts, coalesce(sent_at, updated_at)
FROM outreach
WHERE alert_id = ANY(%s::uuid[])
ORDER BY alert_id, step, id
"""
_INSERT_CLAIM = """
INSERT INTO claims (id, incident_id, member_id, alert_id, device_id, type, line, policy_number, status, loss_at,
                    green_channel, document, evidence, evidence_digest, status_history)
VALUES (%(id)s, %(incident_id)s, %(member_id)s, %(alert_id)s, %(device_id)s, %(type)s, %(line)s, %(policy_number)s,
        'prefilled', %(loss_at)s, %(green_channel)s, %(document)s, %(evidence)s, %(evidence_digest)s,
        %(status_history)s)
ON CONFLICT (incident_id) DO NOTHING
RETURNING id::text
"""
# More alerts than this in one evidence window is a storm; the incident's own alert is always among them.
ALERTS_MAX = 200


def _at_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def insert_incidents(conn: AsyncConnection, events: Sequence[IncidentOpened], *, settle_s: int) -> list[str]:
    """Store the incidents not yet stored, and wake the builders; the ids that were new."""
    inserted = []
    for event in events:
        cur = await conn.execute(_INSERT, {
            "id": event.incident_id, "kind": event.kind, "covered_by": event.covered_by,
            "member_id": event.member_id, "device_id": event.device_id, "alert_id": event.alert_id,
            "location": event.location, "started_at": _at_ms(event.started_at_ms),
            "detected_at": _at_ms(event.detected_at_ms), "event": Jsonb(event.model_dump(mode="json")),
            "settle_s": settle_s,
        })
        if (row := await cur.fetchone()) is not None:
            inserted.append(row[0])
    if inserted:
        await conn.execute("SELECT pg_notify(%s, '')", (INCIDENTS_CHANNEL,))
    return inserted


async def buildable_incidents(conn: AsyncConnection, limit: int) -> list[str]:
    """Ids of undecided incidents whose loss has settled, oldest first."""
    cur = await conn.execute(_BUILDABLE, {"limit": limit})
    return [row[0] for row in await cur.fetchall()]


async def lock_undecided(conn: AsyncConnection, incident_id: str) -> IncidentFacts | None:
    """The incident, locked for this transaction; None when decided meanwhile or another builder holds it."""
    cur = await conn.execute(_LOCK, (incident_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    id_, kind, covered_by, member_id, device_id, alert_id, location, started_at, detected_at, event = row
    return IncidentFacts(
        id=id_, kind=kind, covered_by=covered_by, member_id=member_id, device_id=device_id, alert_id=alert_id,
        alert_type=event["alert_type"], location=location, started_at=started_at,
        condition_met_at=_at_ms(event["condition_met_at_ms"]), detected_at=detected_at,
        evidence=event.get("evidence") or {},
    )


async def record_decision(conn: AsyncConnection, incident_id: str, decision: str, *, at: datetime,
                          claim_id: str | None = None) -> None:
    """Mark the incident decided: a claim opened, or none and why, in words."""
    await conn.execute(_DECIDE, {"id": incident_id, "decision": decision, "claim_id": claim_id, "at": at})


async def load_member(conn: AsyncConnection, member_id: str) -> MemberFacts | None:
    """The member as the claim needs them; None when deleted. A policy without a number raises ValueError."""
    cur = await conn.execute(_MEMBER, (member_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    id_, name, birth_date, phone, email, address, timezone, policy, consent = row
    number, line = (policy or {}).get("number"), (policy or {}).get("line")
    if not isinstance(number, str) or not number:
        raise ValueError(f"member {id_}'s policy has no number")
    return MemberFacts(
        id=id_, name=name, birth_date=birth_date, phone=phone, email=email, address=address, timezone=timezone,
        # A line that is none of the known ones is judged by coverage ("no line on file"), not an error.
        policy_number=number, policy_line=line if isinstance(line, str) else "",
        auto_claims=(consent or {}).get("auto_claims") is True,
    )


async def load_device(conn: AsyncConnection, device_id: str) -> DeviceFacts | None:
    cur = await conn.execute(_DEVICE, (device_id,))
    row = await cur.fetchone()
    if row is None:
        return None
    device_id, kind, location, report_interval_s, created_at = row
    return DeviceFacts(device_id=device_id, kind=kind, location=location, report_interval_s=report_interval_s,
                       registered_at=created_at)


def _alert(row: Sequence[Any]) -> AlertRecord:
    (id_, type_, severity, status, triggered_at, raised_at, cleared_at, resolved_at, acknowledged_at,
     acknowledged_by, outcome, history) = row
    return AlertRecord(
        id=id_, type=type_, severity=severity, status=status, triggered_at=triggered_at, raised_at=raised_at,
        cleared_at=cleared_at, resolved_at=resolved_at, acknowledged_at=acknowledged_at,
        acknowledged_by=acknowledged_by, outcome=outcome, history=history or [],
    )


async def load_alert(conn: AsyncConnection, alert_id: str) -> AlertRecord | None:
    """The incident's own alert; None when the alert consumer has not stored it (or it was deleted)."""
    cur = await conn.execute(_ALERT, (alert_id,))
    row = await cur.fetchone()
    return _alert(row) if row is not None else None


async def load_alerts(conn: AsyncConnection, incident: IncidentFacts,
                      window: tuple[datetime, datetime]) -> list[AlertRecord]:
    """The member's alerts active during the evidence window, with their history."""
    cur = await conn.execute(_ALERTS_IN_WINDOW, {"member_id": incident.member_id, "alert_id": incident.alert_id,
                                                 "from": window[0], "to": window[1], "limit": ALERTS_MAX})
    return [_alert(row) for row in await cur.fetchall()]


async def load_readings(conn: AsyncConnection, device_id: str, window: tuple[datetime, datetime],
                        limit: int) -> list[Reading]:
    """The device's readings in the window, in time order, at most `limit`."""
    cur = await conn.execute(_READINGS, {"device_id": device_id, "from": window[0], "to": window[1],
                                         "limit": limit})
    return [Reading(ts=ts, metric=metric, value=value, seq=seq) for ts, metric, value, seq in await cur.fetchall()]


async def load_outreach(conn: AsyncConnection, alert_ids: Sequence[str]) -> list[OutreachRecord]:
    """Every message sent or tried for these alerts (the outreach log)."""
    cur = await conn.execute(_OUTREACH, (list(alert_ids),))
    return [OutreachRecord(alert_id=alert_id, step=step, to=to, channel=channel, status=status, reason=reason,
                           attempts=attempts, at=at)
            for alert_id, step, to, channel, status, reason, attempts, at in await cur.fetchall()]


async def insert_claim(conn: AsyncConnection, document: Mapping[str, Any], *, incident: IncidentFacts,
                       loss_at: datetime, evidence: bytes, evidence_digest: str, at: datetime) -> bool:
    """Open the claim as `prefilled`; False when the incident already has one."""
    cur = await conn.execute(_INSERT_CLAIM, {
        "id": document["id"], "incident_id": incident.id, "member_id": incident.member_id,
        "alert_id": incident.alert_id, "device_id": incident.device_id, "type": document["type"],
        "line": document["line"], "policy_number": document["policy_number"], "loss_at": loss_at,
        "green_channel": bool(document["green_channel"]), "document": Jsonb(document), "evidence": evidence,
        "evidence_digest": evidence_digest,
        "status_history": Jsonb([{"at": utc_text(at), "status": "prefilled", "by": "vigil"}]),
    })
    return await cur.fetchone() is not None
