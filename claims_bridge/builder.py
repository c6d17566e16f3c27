"""The builder: each settled incident decided once, in one transaction, as a claim opened or none and why.

Decided means never looked at again, so only errors that may pass (a lost connection, a deadlock)
leave an incident for the next round. An incident that cannot be built for any other reason (bad
data, a bug) is decided as "not built" with the error, logged, and counted: one bad incident must
never hold up the claims behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from claims_bridge.incident_store import (
    buildable_incidents,
    insert_claim,
    load_alert,
    load_alerts,
    load_device,
    load_member,
    load_outreach,
    load_readings,
    lock_undecided,
    record_decision,
)
from claims_bridge.metrics import CLAIMS_OPENED, DECISIONS_WITHOUT_CLAIM
from claims_bridge.rounds import Wakeup, run_rounds
from vigil.channels import ALERTS_CHANNEL, INCIDENTS_CHANNEL
from vigil.claims.building import build_claim, claim_id
from vigil.claims.coverage import coverage_refusal
from vigil.claims.evidence import MAX_READINGS, consistency, digest, encode, evidence_package, evidence_window
from vigil.claims.facts import IncidentFacts
from vigil.settings import Settings
from vigil.storage.claims import ClaimSettings, confirm_claim, request_confirmation
from vigil.storage.schema import describe

log = logging.getLogger(__name__)

BATCH = 20
DB_WAIT_S = 5.0
OPENED = "claim opened"
# Errors PostgreSQL gives for what it is sent (a value out of range, a constraint): the same every time.
_REFUSED_FOR_GOOD = (psycopg.errors.DataError, psycopg.errors.IntegrityError)


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of one incident: the words stored, and the claim (type) when one was opened."""

    text: str
    why: str = ""  # without a claim: the metric label (not_covered, member_gone, not_built)
    claim_type: str | None = None


class Builder:
    """Decides settled incidents in rounds of `BATCH`, woken by new incidents or every second."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, stopping: asyncio.Event, *,
                 alive: Callable[[], None]) -> None:
        self._pool = pool
        self._settings = settings
        self._config = ClaimSettings.from_settings(settings)
        self._stopping = stopping
        self._alive = alive

    async def run(self) -> None:
        # A new incident, or an alert that changed (it may have ended, and its claim be due now).
        wakeup = Wakeup(self._settings.database_url, (INCIDENTS_CHANNEL, ALERTS_CHANNEL), self._stopping)
        await run_rounds("claim builder", self.round, wakeup, self._stopping, alive=self._alive)

    async def round(self) -> bool:
        """Decide what has settled; True when a full batch was decided (more may wait)."""
        async with self._pool.connection(timeout=DB_WAIT_S) as conn:
            ids = await buildable_incidents(conn, BATCH)
        decided = 0
        for incident_id in ids:
            if self._stopping.is_set():
                break
            decided += await self._decide(incident_id)
        return decided == BATCH

    async def _decide(self, incident_id: str) -> bool:
        """One incident in one transaction; False when another builder has it or it was decided meanwhile."""
        now = datetime.now(UTC)
        try:
            async with self._pool.connection(timeout=DB_WAIT_S) as conn, conn.transaction():
                incident = await lock_undecided(conn, incident_id)
                if incident is None:
                    return False
                decision = await self._build(conn, incident, now)
        except _REFUSED_FOR_GOOD as e:
            decision = await self._not_built(incident_id, f"PostgreSQL refused it: {describe(e)}", now)
        except psycopg.Error:
            raise  # may pass: the round fails and the incident comes again
        except Exception as e:
            log.exception("building the claim of incident %s failed", incident_id)
            decision = await self._not_built(incident_id, f"{type(e).__name__}: {e}", now)
        if decision.claim_type is not None:
            CLAIMS_OPENED.labels(decision.claim_type).inc()
            log.info("incident %s: %s (%s)", incident_id, decision.text, decision.claim_type)
            return True
        DECISIONS_WITHOUT_CLAIM.labels(decision.why).inc()
        # Not built is a loss nobody claimed for: someone must look at it.
        log.log(logging.WARNING if decision.why == "not_built" else logging.INFO, "incident %s: %s", incident_id,
                decision.text)
        return True

    async def _not_built(self, incident_id: str, error: str, now: datetime) -> Decision:
        decision = Decision(f"not built: {error}", why="not_built")
        async with self._pool.connection(timeout=DB_WAIT_S) as conn, conn.transaction():
            await record_decision(conn, incident_id, decision.text, at=now)
        return decision

    async def _build(self, conn: AsyncConnection, incident: IncidentFacts, now: datetime) -> Decision:
        member = await load_member(conn, incident.member_id)
        if member is None:
            decision = Decision(f"no claim: member {incident.member_id} no longer exists", why="member_gone")
            await record_decision(conn, incident.id, decision.text, at=now)
            return decision
        refusal = coverage_refusal(incident.kind, incident.covered_by, policy_line=member.policy_line,
                                   policy_number=member.policy_number)
        if refusal is not None:
            await record_decision(conn, incident.id, refusal, at=now)
            return Decision(refusal, why="not_covered")
        device = await load_device(conn, incident.device_id)
        if device is None:
            raise ValueError(f"device {incident.device_id} is no longer registered, so its evidence cannot be read")
        alert = await load_alert(conn, incident.alert_id)
        window = evidence_window(incident, alert, now)
        # One more than the package keeps, so that it can say the readings were cut.
        readings = await load_readings(conn, device.device_id, window, MAX_READINGS + 1)
        alerts = await load_alerts(conn, incident, window)
        outreach = await load_outreach(conn, [a.id for a in alerts])
        checks = consistency(incident, device, readings)
        id_ = claim_id(incident.id)
        evidence = encode(evidence_package(claim_id=id_, incident=incident, device=device, readings=readings,
                                           alerts=alerts, outreach=outreach, checks=checks, window=window,
                                           built_at=now))
        evidence_digest = digest(evidence)
        document = build_claim(incident=incident, member=member, device=device, alert=alert, checks=checks,
                               evidence_digest=evidence_digest, public_url=self._settings.public_url, built_at=now,
                               readings=readings)
        opened = await insert_claim(conn, document, incident=incident, loss_at=incident.started_at,
                                    evidence=evidence, evidence_digest=evidence_digest, at=now)
        await record_decision(conn, incident.id, OPENED, at=now, claim_id=id_)
        if opened:
            if member.auto_claims:
                await confirm_claim(conn, id_, by="consent:auto_claims", now=now, config=self._config)
            else:
                await request_confirmation(conn, id_, now=now, config=self._config)
        return Decision(OPENED, claim_type=document["type"])
