"""Claims written straight into their tables, as the claims bridge writes them: the incident row, and the
claim built by the pure core (`vigil.claims.building`, `vigil.claims.evidence`) from the member and
device rows the API registered. Also a delivery with its attempts, as the delivery worker records them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from vigil.claims.building import build_claim, claim_id
from vigil.claims.evidence import consistency, digest, encode, evidence_package, evidence_window
from vigil.claims.facts import AlertRecord, DeviceFacts, IncidentFacts, MemberFacts, Reading
from vigil.claims.lifecycle import history_entry
from vigil.telemetry import to_ms
from vigil.timefmt import utc_text

PUBLIC_URL = "http://127.0.0.1:8080"
# The alert type behind each kind of incident, and the line that covers it.
_ALERT_TYPE = {"water_damage": "water_leak", "fire": "smoke", "accident": "fall"}
_COVERED_BY = {"water_damage": "home", "fire": "home", "accident": "health"}


@dataclass(frozen=True)
class StoredClaim:
    id: str
    incident_id: str
    document: dict[str, Any]
    evidence: bytes
    digest: str


def insert_claim(
    database_url: str,
    member_id: str,
    device_id: str,
    *,
    kind: str = "water_damage",
    status: str = "prefilled",
    loss_at: datetime | None = None,
    created_at: datetime | None = None,
    outcome: str | None = None,
) -> StoredClaim:
    """A claim of `kind` for the member's device, its loss 20 minutes ago unless `loss_at` says otherwise.

    `outcome` resolves the claim's alert with it (`emergency_dispatched` makes an accident green channel).
    """
    loss_at = loss_at or datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    built_at = loss_at + timedelta(minutes=15)
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        member_row = conn.execute("SELECT * FROM members WHERE id = %s", (member_id,)).fetchone()
        device_row = conn.execute("SELECT * FROM devices WHERE device_id = %s", (device_id,)).fetchone()
    member = MemberFacts(
        id=member_id, name=member_row["name"], birth_date=member_row["birth_date"], phone=member_row["phone"],
        email=member_row["email"], address=member_row["address"], timezone=member_row["timezone"],
        policy_number=member_row["policy"]["number"], policy_line=member_row["policy"]["line"],
        auto_claims=member_row["consent"]["auto_claims"],
    )
    device = DeviceFacts(
        device_id=device_id, kind=device_row["kind"], location=device_row["location"],
        report_interval_s=device_row["report_interval_s"], registered_at=device_row["created_at"] - timedelta(days=30),
    )
    incident = IncidentFacts(
        id=str(uuid.uuid4()), kind=kind, covered_by=_COVERED_BY[kind], member_id=member_id, device_id=device_id,
        alert_id=str(uuid.uuid4()), alert_type=_ALERT_TYPE[kind], location=device_row["location"],
        started_at=loss_at, condition_met_at=loss_at + timedelta(seconds=60),
        detected_at=loss_at + timedelta(seconds=62), evidence={"metric": _ALERT_TYPE[kind]},
    )
    alert = _alert(incident, outcome)
    readings = _readings(kind, loss_at)
    checks = consistency(incident, device, readings)
    cid = claim_id(incident.id)
    package = evidence_package(
        claim_id=cid, incident=incident, device=device, readings=readings, alerts=[alert], outreach=[],
        checks=checks, window=evidence_window(incident, alert, built_at), built_at=built_at,
    )
    evidence = encode(package)
    document = build_claim(
        incident=incident, member=member, device=device, alert=alert, checks=checks,
        evidence_digest=digest(evidence), public_url=PUBLIC_URL, built_at=built_at, readings=readings,
    )
    history = [history_entry("prefilled", by="vigil", now=built_at)]
    if status != "prefilled":
        history.append(history_entry("confirmed", by="member", now=built_at + timedelta(minutes=1)))
    if status not in ("prefilled", "confirmed"):
        history.append(history_entry(status, by="vigil", now=built_at + timedelta(minutes=2)))
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO incidents (id, kind, covered_by, member_id, device_id, alert_id, location, started_at,"
            " detected_at, event, build_due_at, decided_at, claim_id, decision)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'claim opened')",
            (incident.id, kind, incident.covered_by, member_id, device_id, incident.alert_id, incident.location,
             loss_at, incident.detected_at, Jsonb(_event(incident)), built_at, built_at, cid),
        )
        conn.execute(
            "INSERT INTO claims (id, incident_id, member_id, alert_id, device_id, type, line, policy_number, status,"
            " loss_at, green_channel, document, evidence, evidence_digest, status_history, confirmed_at,"
            " confirmed_by, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (cid, incident.id, member_id, incident.alert_id, device_id, kind, incident.covered_by,
             member.policy_number, status, loss_at, document["green_channel"], Jsonb(document), evidence,
             document["evidence"]["digest"], Jsonb(history),
             None if status == "prefilled" else built_at + timedelta(minutes=1),
             None if status == "prefilled" else "member", created_at or built_at, created_at or built_at),
        )
    return StoredClaim(cid, incident.id, document, evidence, document["evidence"]["digest"])


def insert_delivery(
    database_url: str, claim: StoredClaim, attempts: Sequence[tuple[int | None, str | None, str]], *, status: str
) -> None:
    """The claim's delivery row and its attempts `(status_code, error, outcome)`, a minute apart."""
    start = datetime.now(UTC) - timedelta(minutes=10)
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO claim_deliveries (claim_id, body, status, attempts, next_attempt_at, give_up_at, last_error,"
            " delivered_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (claim.id, encode(claim.document), status, len(attempts), start, start + timedelta(days=3),
             None if status == "delivered" else next((e for _, e, _ in reversed(attempts) if e), None),
             start + timedelta(minutes=len(attempts)) if status == "delivered" else None),
        )
        for number, (status_code, error, outcome) in enumerate(attempts, start=1):
            conn.execute(
                "INSERT INTO claim_delivery_attempts (claim_id, attempt, at, duration_ms, status_code, error, outcome)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (claim.id, number, start + timedelta(minutes=number), 40 + number, status_code, error, outcome),
            )


def _alert(incident: IncidentFacts, outcome: str | None) -> AlertRecord:
    raised = incident.detected_at
    resolved = raised + timedelta(minutes=5) if outcome else None
    return AlertRecord(
        id=incident.alert_id, type=incident.alert_type, severity="critical",
        status="resolved" if outcome else "open", triggered_at=incident.condition_met_at, raised_at=raised,
        cleared_at=None, resolved_at=resolved, acknowledged_at=None, acknowledged_by=None, outcome=outcome,
        history=[{"at": utc_text(raised), "action": "raised"}],
    )


def _readings(kind: str, loss_at: datetime) -> list[Reading]:
    """A reading a minute from 25 minutes before the loss to 5 after: vital signs for an accident."""
    metrics = {"accident": ("heart_rate", "spo2", "worn"), "fire": ("smoke",), "water_damage": ("water_leak",)}[kind]
    readings = []
    for minute in range(-25, 6):
        ts = loss_at + timedelta(minutes=minute)
        for metric in metrics:
            value = {"heart_rate": 72.0 + max(minute, 0) * 6, "spo2": 97.0, "worn": 1.0}.get(metric, float(minute >= 0))
            readings.append(Reading(ts=ts, metric=metric, value=value, seq=minute + 100))
    return readings


def _event(incident: IncidentFacts) -> dict[str, Any]:
    """The `vigil.events.IncidentOpened` the bridge stored."""
    return {
        "incident_id": incident.id, "kind": incident.kind, "covered_by": incident.covered_by,
        "member_id": incident.member_id, "device_id": incident.device_id, "location": incident.location,
        "alert_id": incident.alert_id, "alert_type": incident.alert_type, "started_at_ms": to_ms(incident.started_at),
        "condition_met_at_ms": to_ms(incident.condition_met_at), "detected_at_ms": to_ms(incident.detected_at),
        "evidence": dict(incident.evidence),
    }
