"""The console's claims: the list (green channel first), a claim's page, its evidence, and confirming a
pre-filled claim on the member's behalf.

Access is the API's (`Principal.may_see`); reading a claim or its evidence is audited as the API's reads
are. The confirm form answers with a redirect and a one-time message, like the alert actions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from alerts.audit import record_read
from api.auth import Principal
from api.claim_queries import LIST_CLAIMS, READ_CLAIM, READ_CLAIM_EVIDENCE, claim_evidence, claim_record, list_claims
from api.console import queries, session, words
from api.console.alert_page import CONSOLE
from api.console.pages import cross_site, forbidden, principal_of, problem, redirect_with, render, to_sign_in
from api.deps import ClaimConfig, Pool
from vigil.claims.lifecycle import StatusRefused
from vigil.storage.claims import ClaimChange, ClaimSettings, confirm_claim, get_claim, send_claim_again

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

# A list longer than this is not read by a person; the page says how many are shown.
CLAIMS_LIMIT = 300


def _claim_uuid(claim_id: str) -> str | None:
    try:
        return str(uuid.UUID(claim_id))
    except ValueError:
        return None


async def _not_found(request: Request, pool: Pool, principal: Principal) -> Response:
    return await problem(
        request, pool, principal, 404, "No such claim",
        "There is no claim at this address. It may have been mistyped; the claims list shows every claim.",
    )


@router.get("/claims")
async def claims_list(request: Request, pool: Pool) -> Response:
    """Every claim of the caller's members: green channel first (marked), then the newest."""
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    async with pool.connection() as conn:
        claims = await list_claims(conn, visible_to=principal.care_manager_id, limit=CLAIMS_LIMIT)
        await record_read(conn, principal.actor, principal.role, LIST_CLAIMS, None, CONSOLE)
    return await render(request, pool, principal, "claims.html", {"claims": claims, "limit": CLAIMS_LIMIT})


@router.get("/claims/{claim_id}")
async def claim_view(claim_id: str, request: Request, pool: Pool) -> Response:
    """One claim: what it says, its evidence checks and digest, its delivery attempts and status history."""
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    if (uid := _claim_uuid(claim_id)) is None:
        return await _not_found(request, pool, principal)
    async with pool.connection() as conn:
        claim = await claim_record(conn, uid)
        allowed = claim is not None and principal.may_see(claim["care_manager_id"])
        if allowed:
            viewer = await queries.viewer(conn, principal.care_manager_id)
            member = await queries.member(conn, claim["member_id"])
            names = {row["id"]: row["name"] for row in await queries.care_managers(conn)}
            await record_read(conn, principal.actor, principal.role, READ_CLAIM, claim["member_id"],
                              f"claim {uid} {CONSOLE}")
    if claim is None:
        return await _not_found(request, pool, principal)
    if not allowed:
        return await forbidden(request, pool, principal, "claim")
    tz = (viewer and viewer["timezone"]) or "UTC"
    return await render(request, pool, principal, "claim.html", {
        "claim": claim,
        "member": member,
        "member_name": claim["member_name"],
        "names": names,
        "checks": words.claim_checks(claim["evidence"]["checks"], claim["type"], tz, datetime.now(UTC)),
        "history": list(reversed(claim["status_history"] or [])),
        "attempts": list(reversed(claim["delivery"]["attempts_log"])) if claim["delivery"] else [],
    })


@router.get("/claims/{claim_id}/evidence")
async def claim_evidence_json(claim_id: str, request: Request, pool: Pool) -> Response:
    """The evidence package, byte for byte as stored (what `evidence_digest` is the digest of)."""
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    if (uid := _claim_uuid(claim_id)) is None:
        return await _not_found(request, pool, principal)
    async with pool.connection() as conn:
        row = await claim_evidence(conn, uid)
        allowed = row is not None and principal.may_see(row["care_manager_id"])
        if allowed:
            await record_read(conn, principal.actor, principal.role, READ_CLAIM_EVIDENCE, row["member_id"],
                              f"claim {uid} evidence {CONSOLE}")
    if row is None:
        return await _not_found(request, pool, principal)
    if not allowed:
        return await forbidden(request, pool, principal, "claim")
    return Response(bytes(row["evidence"]), media_type="application/json", headers={"Cache-Control": "no-store"})


@dataclass(frozen=True, slots=True)
class _Button:
    """A button on a claim's page: the status change it asks for, and what to say once it is done."""

    change: ClaimChange
    done: str
    held: str  # what to say instead when no insurer endpoint is configured


_CONFIRM = _Button(confirm_claim, "Confirmed: the claim is on its way to the insurer.",
                   "Confirmed. No insurer endpoint is configured, so the claim is held in Vigil.")
_SEND_AGAIN = _Button(send_claim_again, "Sent again: the claim is on its way to the insurer.",
                      "Queued again. No insurer endpoint is configured, so the claim is held in Vigil.")


@router.post("/claims/{claim_id}/confirm")
async def confirm_for_member(claim_id: str, request: Request, pool: Pool, config: ClaimConfig) -> Response:
    """Confirm a pre-filled claim on the member's behalf (they asked by phone, say); back to the claim's page."""
    return await _press(claim_id, request, pool, config, _CONFIRM)


@router.post("/claims/{claim_id}/send_again")
async def send_failed_claim_again(claim_id: str, request: Request, pool: Pool, config: ClaimConfig) -> Response:
    """Deliver a claim whose delivery gave up once more; back to the claim's page."""
    return await _press(claim_id, request, pool, config, _SEND_AGAIN)


async def _press(claim_id: str, request: Request, pool: Pool, config: ClaimSettings, button: _Button) -> Response:
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    if (uid := _claim_uuid(claim_id)) is None:
        return await _not_found(request, pool, principal)
    if not session.same_origin(request):
        return await cross_site(request, pool, principal)
    async with pool.connection() as conn, conn.transaction():
        claim = await get_claim(conn, uid, lock=True)
        allowed = claim is not None and principal.may_see(claim["care_manager_id"])
        if allowed:
            try:
                await button.change(conn, uid, by=principal.actor, now=datetime.now(UTC), config=config)
                kind, text = "ok", button.done if config.webhook_configured else button.held
            except StatusRefused as e:
                kind, text = "error", f"{str(e).rstrip('.')}."
    if claim is None:
        return await _not_found(request, pool, principal)
    if not allowed:
        return await forbidden(request, pool, principal, "claim")
    return redirect_with(request, f"/claims/{uid}", kind, text)
