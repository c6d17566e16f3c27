"""`/api/v1/incidents`: the losses the rules found and what became of each, so that a loss without a
claim (a policy that does not cover it, a claim that could not be built) is seen, with the reason."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.audit import record_read
from api.auth import Caller, check_member_visible
from api.claim_queries import LIST_INCIDENTS, list_incidents
from api.deps import Pool
from api.errors import error_responses
from api.params import IncidentFilters
from api.registry_sql import get_member
from api.schemas import Incident

router = APIRouter(prefix="/incidents", tags=["claims"])


@router.get(
    "",
    response_model=list[Incident],
    responses=error_responses(401, 403, 422, 503, _403="`member_id` names a member not assigned to you."),
)
async def search_incidents(caller: Caller, pool: Pool, filters: Annotated[IncidentFilters, Query()]) -> list[Incident]:
    """Incidents, newest first, each with its claim or the reason it has none; a care manager sees only their
    own members'."""
    async with pool.connection() as conn:
        if filters.member_id is not None and not caller.is_admin:
            member = await get_member(conn, filters.member_id)
            check_member_visible(caller, member["care_manager_id"] if member else None)
        rows = await list_incidents(conn, member_id=filters.member_id, outcome=filters.outcome,
                                    visible_to=None if caller.is_admin else caller.care_manager_id,
                                    limit=filters.limit)
        await record_read(conn, caller.actor, caller.role, LIST_INCIDENTS, filters.member_id, filters.query_text())
    return [Incident.model_validate(r) for r in rows]
