"""`/api/v1/care_managers`: the people the escalation ladder reaches after the member."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException

from api.auth import Admin, Caller
from api.deps import Pool
from api.errors import error_responses
from api.params import CareManagerIdPath
from api.registry_sql import get_care_manager, insert_care_manager
from api.schemas import CareManager, CareManagerIn

router = APIRouter(prefix="/care_managers", tags=["care managers"])


@router.post("", status_code=201, response_model=CareManager, responses=error_responses(401, 403, 409, 413, 422, 503))
async def create_care_manager(body: CareManagerIn, _: Admin, pool: Pool) -> CareManager:
    """Register a care manager; the id is generated (`cm_...`) unless the body chooses one.

    Members name their care manager by this id (`care_manager_id`), and so do care-manager tokens.
    """
    care_manager = body.model_dump()
    care_manager["id"] = body.id or f"cm_{uuid.uuid4().hex[:16]}"
    async with pool.connection() as conn:
        row = await insert_care_manager(conn, care_manager)
    if row is None:
        raise HTTPException(409, f"a care manager with id {care_manager['id']!r} already exists")
    return CareManager.model_validate(row)


@router.get(
    "/{care_manager_id}",
    response_model=CareManager,
    responses=error_responses(401, 403, 404, 422, 503, _403="A care manager may read only their own record."),
)
async def read_care_manager(care_manager_id: CareManagerIdPath, caller: Caller, pool: Pool) -> CareManager:
    """One care manager, for an admin or that care manager."""
    # Checked before the lookup, so that another care manager's token learns nothing of which ids exist.
    if not caller.is_admin and caller.care_manager_id != care_manager_id:
        raise HTTPException(403, "a care manager may read only their own record")
    async with pool.connection() as conn:
        row = await get_care_manager(conn, care_manager_id)
    if row is None:
        raise HTTPException(404, f"no care manager has id {care_manager_id!r}")
    return CareManager.model_validate(row)
