"""`/api/v1/claims`: the claims Vigil pre-filled from incidents, their evidence, confirming one, and the
insurer's answers.

Claims tell of a member's loss and health, so each answer that shows one is recorded in the audit log.
The insurer's answer (`POST /claims/{id}/status`) carries no token: it is signed like the deliveries
(`X-Vigil-Signature`, HMAC-SHA256 of the raw body with `VIGIL_CLAIMS_WEBHOOK_SECRET`), and checked
before anything in it is read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from alerts.audit import record_read
from api.auth import Caller, Principal, check_member_visible
from api.claim_queries import (
    LIST_CLAIMS,
    READ_CLAIM,
    READ_CLAIM_EVIDENCE,
    READ_CLAIM_FHIR,
    claim_evidence,
    claim_record,
    list_claims,
)
from api.deps import ClaimConfig, Pool
from api.errors import FieldError, error_responses
from api.params import ClaimFilters, ClaimIdPath
from api.registry_sql import get_member
from api.schemas import Claim, InsurerAnswerIn
from vigil.claims import signing
from vigil.claims.fhir import accident_bundle
from vigil.claims.lifecycle import StatusRefused
from vigil.storage.claims import (
    ClaimChange,
    ClaimSettings,
    confirm_claim,
    get_claim,
    record_insurer_answer,
    send_claim_again,
)

router = APIRouter(prefix="/claims", tags=["claims"])

FHIR_MEDIA_TYPE = "application/fhir+json"
_REFUSED = "The claim's status does not allow this (e.g. it is confirmed already); `detail` says why."
_UNSIGNED = (
    "`X-Vigil-Signature` is missing or is not `sha256=` and the HMAC-SHA256 of the raw body with the shared "
    "secret, or no secret is configured; nothing was changed."
)
# Published as the route's security scheme (not a bearer token); checked in the handler, over the raw body.
_signature = APIKeyHeader(
    name="X-Vigil-Signature",
    scheme_name="InsurerSignature",
    description="`sha256=<hex>`: the HMAC-SHA256 of the raw body with `VIGIL_CLAIMS_WEBHOOK_SECRET`.",
    auto_error=False,
)
# The body is read raw (the signature covers its exact bytes) and validated after the signature check;
# the schema still shows clients what to send.
_ANSWER_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": InsurerAnswerIn.model_json_schema()}}}
}


def _not_found(claim_id: str) -> HTTPException:
    return HTTPException(404, f"no claim has id {claim_id!r}")


@router.get(
    "",
    response_model=list[Claim],
    responses=error_responses(401, 403, 422, 503, _403="`member_id` names a member not assigned to you."),
)
async def search_claims(caller: Caller, pool: Pool, filters: Annotated[ClaimFilters, Query()]) -> list[Claim]:
    """Claims for a dedicated handler (`green_channel`) first, then the newest; a care manager sees only
    their own members'."""
    async with pool.connection() as conn:
        if filters.member_id is not None and not caller.is_admin:
            member = await get_member(conn, filters.member_id)
            check_member_visible(caller, member["care_manager_id"] if member else None)
        rows = await list_claims(
            conn,
            member_id=filters.member_id,
            status=filters.status,
            green_channel=filters.green_channel,
            visible_to=None if caller.is_admin else caller.care_manager_id,
            limit=filters.limit,
        )
        await record_read(conn, caller.actor, caller.role, LIST_CLAIMS, filters.member_id, filters.query_text())
    return [Claim.model_validate(r) for r in rows]


@router.get("/{claim_id}", response_model=Claim, responses=error_responses(401, 403, 404, 422, 503))
async def read_claim(claim_id: ClaimIdPath, caller: Caller, pool: Pool) -> Claim:
    """One claim: what Vigil pre-filled, its status history and its delivery to the insurer, attempt by attempt."""
    async with pool.connection() as conn:
        row = await claim_record(conn, claim_id)
        if row is None:
            raise _not_found(claim_id)
        check_member_visible(caller, row["care_manager_id"])
        await record_read(conn, caller.actor, caller.role, READ_CLAIM, row["member_id"], f"claim {row['id']}")
    return Claim.model_validate(row)


@router.get(
    "/{claim_id}/evidence",
    response_class=Response,
    responses={
        200: {
            "description": "The evidence package, byte for byte as fixed when the claim was opened.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **error_responses(401, 403, 404, 422, 503),
    },
)
async def read_evidence(claim_id: ClaimIdPath, caller: Caller, pool: Pool) -> Response:
    """The claim's evidence package: readings and minute aggregates around the loss, the alerts with their
    history and outreach, the consistency checks. `evidence_digest` is `sha256:` + the SHA-256 of these bytes."""
    async with pool.connection() as conn:
        row = await claim_evidence(conn, claim_id)
        if row is None:
            raise _not_found(claim_id)
        check_member_visible(caller, row["care_manager_id"])
        await record_read(conn, caller.actor, caller.role, READ_CLAIM_EVIDENCE, row["member_id"],
                          f"claim {row['id']} evidence")
    # The stored bytes themselves: re-encoding them would change the digest.
    return Response(content=bytes(row["evidence"]), media_type="application/json")


@router.get(
    "/{claim_id}/fhir",
    response_class=Response,
    responses={
        200: {
            "description": "A FHIR R4B `Bundle` (collection): Patient, vital-sign Observations, Claim.",
            "content": {FHIR_MEDIA_TYPE: {"schema": {"type": "object"}}},
        },
        **error_responses(401, 403, 404, 422, 503, _404="No such claim, or the claim is not an `accident`."),
    },
)
async def read_fhir(claim_id: ClaimIdPath, caller: Caller, pool: Pool) -> JSONResponse:
    """An `accident` claim as a FHIR R4B Bundle, for health insurers' systems."""
    async with pool.connection() as conn:
        row = await claim_evidence(conn, claim_id)
        if row is None:
            raise _not_found(claim_id)
        check_member_visible(caller, row["care_manager_id"])
        if row["type"] != "accident":
            raise HTTPException(
                404,
                f"claim {claim_id!r} is a {row['type'].replace('_', ' ')} claim; FHIR is served for accident "
                "claims only, which health policies cover",
            )
        await record_read(conn, caller.actor, caller.role, READ_CLAIM_FHIR, row["member_id"],
                          f"claim {row['id']} fhir")
    bundle = accident_bundle(row["document"], json.loads(bytes(row["evidence"])), timezone=row["member_timezone"])
    return JSONResponse(bundle, media_type=FHIR_MEDIA_TYPE)


@router.post(
    "/{claim_id}/confirm",
    response_model=Claim,
    responses=error_responses(401, 403, 404, 409, 422, 503, _409=_REFUSED),
)
async def confirm(claim_id: ClaimIdPath, caller: Caller, pool: Pool, config: ClaimConfig) -> Claim:
    """Confirm a pre-filled claim on the member's behalf: it goes to the insurer (or is held when no insurer
    endpoint is configured). The history names who confirmed it."""
    return await _change(claim_id, caller, pool, config, confirm_claim)


@router.post(
    "/{claim_id}/send_again",
    response_model=Claim,
    responses=error_responses(401, 403, 404, 409, 422, 503, _409=_REFUSED),
)
async def send_again(claim_id: ClaimIdPath, caller: Caller, pool: Pool, config: ClaimConfig) -> Claim:
    """Deliver a claim whose delivery gave up (`failed`) once more, with a fresh give-up time: for when the
    insurer's endpoint has been fixed. The same bytes go out under the same `Idempotency-Key`."""
    return await _change(claim_id, caller, pool, config, send_claim_again)


async def _change(claim_id: str, caller: Principal, pool: AsyncConnectionPool, config: ClaimSettings,
                  change: ClaimChange) -> Claim:
    """Apply a caller's status change to a claim of a member they may see; 409 when its status refuses it."""
    async with pool.connection() as conn:
        async with conn.transaction():
            claim = await get_claim(conn, claim_id, lock=True)
            if claim is None:
                raise _not_found(claim_id)
            check_member_visible(caller, claim["care_manager_id"])
            try:
                await change(conn, claim_id, by=caller.actor, now=datetime.now(UTC), config=config)
            except StatusRefused as e:
                raise HTTPException(409, str(e)) from e
        row = await claim_record(conn, claim_id)
    return Claim.model_validate(row)


@router.post(
    "/{claim_id}/status",
    response_model=Claim,
    openapi_extra=_ANSWER_BODY,
    responses=error_responses(
        401, 404, 409, 413, 422, 503,
        _401=_UNSIGNED,
        _409="The claim's status does not allow this answer (it was never sent, or it is paid); `detail` says why.",
    ),
)
async def insurer_answer(
    claim_id: ClaimIdPath,
    request: Request,
    pool: Pool,
    signature: Annotated[str | None, Depends(_signature)],
) -> Claim:
    """The insurer's answer: `accepted` (with their claim number), `needs_info`, `rejected` or `paid`. The
    member is told of each change; the same answer sent again changes nothing. After `paid`, the care
    manager gets follow-up tasks."""
    raw = await request.body()
    if not signing.verify(request.app.state.settings.claims_webhook_secret, raw, signature):
        raise HTTPException(401, "the answer is not signed with the claims secret (X-Vigil-Signature)")
    answer = _answer(raw)
    if answer.claim_id is not None and answer.claim_id != claim_id:
        raise FieldError("claim_id", f"the answer is about claim {answer.claim_id!r}, not {claim_id!r}")
    async with pool.connection() as conn:
        async with conn.transaction():
            if await get_claim(conn, claim_id, lock=True) is None:
                raise _not_found(claim_id)
            try:
                await record_insurer_answer(
                    conn, claim_id, status=answer.status, insurer_claim_number=answer.insurer_claim_number,
                    note=answer.note, now=datetime.now(UTC),
                )
            except StatusRefused as e:
                raise HTTPException(409, str(e)) from e
        row = await claim_record(conn, claim_id)
    return Claim.model_validate(row)


def _answer(raw: bytes) -> InsurerAnswerIn:
    """The signed body as an answer, or the 422 FastAPI gives a body that does not validate."""
    try:
        return InsurerAnswerIn.model_validate_json(raw)
    except ValidationError as e:
        errors: list[dict[str, Any]] = [
            {**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(errors) from e
