"""`/api/v1/members`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError

from api.auth import Admin, Caller, check_member_visible
from api.care_plan_documents import first_plan, override_errors, plan_changed, stored_plan
from api.care_plan_publisher import plan_transaction
from api.deps import CarePlans, Pool
from api.errors import error_responses
from api.params import MemberIdPath
from api.registry_sql import get_member, insert_member
from api.schemas import Member, MemberIn

router = APIRouter(prefix="/members", tags=["members"])


@router.post(
    "",
    status_code=201,
    response_model=Member,
    responses=error_responses(
        401, 403, 409, 413, 422, 503,
        _503="Kafka did not acknowledge the `care_plan`, or the database did not answer; nothing was created.",
    ),
)
async def create_member(body: MemberIn, caller: Admin, pool: Pool, care_plans: CarePlans) -> Member:
    """Enrol a member; the id is generated (`mbr_...`) unless the body chooses one.

    `care_plan` takes the overrides that `PUT /members/{id}/care_plan` takes, checked the same way
    (422 naming `care_plan.<type>.<parameter>`); when present it becomes the plan's version 1 and
    reaches the stream worker before the answer (503, with nothing created, when Kafka does not
    acknowledge it in time).
    """
    if errors := override_errors(body.care_plan, "care_plan"):
        raise RequestValidationError(errors)
    at = datetime.now(UTC)
    member = body.model_dump()
    member["id"] = body.id or f"mbr_{uuid.uuid4().hex[:16]}"
    plan = first_plan(body.care_plan, at, caller)
    member["care_plan"] = plan
    async with pool.connection() as conn, plan_transaction(conn, care_plans) as outbox:
        row = await insert_member(conn, member)
        if row is None:
            raise HTTPException(409, f"a member with id {member['id']!r} already exists")
        if plan["version"]:
            await outbox.publish(plan_changed(member["id"], plan, at), "the member was not created")
    return _member(row)


@router.get("/{member_id}", response_model=Member, responses=error_responses(401, 403, 404, 422, 503))
async def read_member(member_id: MemberIdPath, caller: Caller, pool: Pool) -> Member:
    """One member, for an admin or the member's own care manager."""
    async with pool.connection() as conn:
        row = await get_member(conn, member_id)
    if row is None:
        raise HTTPException(404, f"no member has id {member_id!r}")
    check_member_visible(caller, row["care_manager_id"])
    return _member(row)


def _member(row: dict[str, Any]) -> Member:
    # A member's `care_plan` is its overrides; the version and the rest are under `/care_plan`.
    return Member.model_validate({**row, "care_plan": stored_plan(row["care_plan"])["overrides"]})
