"""The API's and the console's reads of claims: the claim as `api.schemas.Claim` reads it (its stored
document, its status columns, its delivery and every delivery attempt), lists of them, and the
evidence bytes. Status changes are `vigil.storage.claims`'s.

A claim tells of a member's loss and health (a fall, readings around it), so each read of one is
recorded in the audit log under the action names below.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from vigil.storage.rows import fetch_all, fetch_one

READ_CLAIM = "read_claim"
LIST_CLAIMS = "list_claims"
READ_CLAIM_EVIDENCE = "read_claim_evidence"
READ_CLAIM_FHIR = "read_claim_fhir"
LIST_INCIDENTS = "list_incidents"

# The delivery's next try only means something while it is pending; its attempts oldest first.
_COLUMNS = """
c.id::text AS id, c.incident_id::text AS incident_id, c.member_id, c.alert_id::text AS alert_id, c.device_id,
c.type, c.line, c.policy_number, c.status, c.loss_at, c.green_channel, c.document, c.evidence_digest,
c.insurer_claim_number, c.status_history, c.confirmed_at, c.confirmed_by, c.submitted_at, c.created_at,
c.updated_at, m.care_manager_id, m.name AS member_name, m.timezone AS member_timezone,
d.status AS delivery_status, d.attempts AS delivery_attempts,
CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS delivery_next_attempt_at,
d.last_error AS delivery_last_error, d.delivered_at AS delivery_delivered_at, l.attempts_log
"""
_FROM = """
FROM claims c
LEFT JOIN members m ON m.id = c.member_id
LEFT JOIN claim_deliveries d ON d.claim_id = c.id
LEFT JOIN LATERAL (
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'attempt', x.attempt, 'at', x.at, 'duration_ms', x.duration_ms, 'status_code', x.status_code,
        'error', x.error, 'outcome', x.outcome) ORDER BY x.id), '[]') AS attempts_log
    FROM claim_delivery_attempts x WHERE x.claim_id = c.id
) l ON d.claim_id IS NOT NULL
"""
# Green channel first (a dedicated handler takes those), then the newest.
_ORDER = " ORDER BY c.green_channel DESC, c.created_at DESC, c.id"
_EVIDENCE = """
SELECT c.id::text AS id, c.member_id, c.type, c.document, c.evidence, c.evidence_digest, m.care_manager_id,
       coalesce(m.timezone, 'UTC') AS member_timezone
FROM claims c LEFT JOIN members m ON m.id = c.member_id WHERE c.id = %s
"""


async def claim_record(conn: AsyncConnection, claim_id: str) -> dict[str, Any] | None:
    """One claim as the API answers it, plus its member's name, zone and care manager (for access)."""
    row = await fetch_one(conn, "SELECT " + _COLUMNS + _FROM + "WHERE c.id = %s", (claim_id,))
    return _view(row) if row else None


async def list_claims(
    conn: AsyncConnection,
    *,
    member_id: str | None = None,
    status: str | None = None,
    green_channel: bool | None = None,
    visible_to: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Claims, green channel first then newest; `visible_to` (a care manager id) keeps only their members'."""
    where: list[sql.Composable] = [sql.SQL("TRUE")]
    params: list[Any] = []
    for clause, value in (
        ("c.member_id = %s", member_id),
        ("c.status = %s", status),
        ("c.green_channel = %s", green_channel),
        ("m.care_manager_id = %s", visible_to),
    ):
        if value is not None:
            where.append(sql.SQL(clause))
            params.append(value)
    query = sql.SQL("SELECT " + _COLUMNS + _FROM + "WHERE {}" + _ORDER + " LIMIT %s")
    rows = await fetch_all(conn, query.format(sql.SQL(" AND ").join(where)), [*params, limit])
    return [_view(row) for row in rows]


_INCIDENT_COLUMNS = """
i.id::text AS id, i.kind, i.covered_by, i.member_id, i.device_id, i.alert_id::text AS alert_id, i.location,
i.started_at, i.detected_at, i.received_at, i.build_due_at, i.decided_at, i.claim_id::text AS claim_id, i.decision
FROM incidents i LEFT JOIN members m ON m.id = i.member_id
"""
# What each `outcome` filter keeps: a claim opened, decided without one (and why), or still to decide.
_INCIDENT_OUTCOMES = {
    "claim": "i.claim_id IS NOT NULL",
    "no_claim": "i.decided_at IS NOT NULL AND i.claim_id IS NULL",
    "pending": "i.decided_at IS NULL",
}


async def list_incidents(
    conn: AsyncConnection,
    *,
    member_id: str | None = None,
    outcome: str | None = None,
    visible_to: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Incidents newest first, each with what became of it; `visible_to` keeps one care manager's members'."""
    where: list[sql.Composable] = [sql.SQL(_INCIDENT_OUTCOMES[outcome]) if outcome else sql.SQL("TRUE")]
    params: list[Any] = []
    for clause, value in (("i.member_id = %s", member_id), ("m.care_manager_id = %s", visible_to)):
        if value is not None:
            where.append(sql.SQL(clause))
            params.append(value)
    query = sql.SQL("SELECT " + _INCIDENT_COLUMNS + "WHERE {} ORDER BY i.received_at DESC, i.id LIMIT %s")
    return await fetch_all(conn, query.format(sql.SQL(" AND ").join(where)), [*params, limit])


async def claim_evidence(conn: AsyncConnection, claim_id: str) -> dict[str, Any] | None:
    """The claim's evidence bytes as stored (`evidence`), its document, member (and their zone) and care manager."""
    return await fetch_one(conn, _EVIDENCE, (claim_id,))


def _view(row: dict[str, Any]) -> dict[str, Any]:
    """The stored document's fields under the row's own: status, history and number change after building."""
    document = row.pop("document") or {}
    delivery = {name: row.pop(f"delivery_{name}") for name in
                ("status", "attempts", "next_attempt_at", "last_error", "delivered_at")}
    log = row.pop("attempts_log")
    row["delivery"] = None if delivery["status"] is None else {**delivery, "attempts_log": log or []}
    return {**document, **row}
