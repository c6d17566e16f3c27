"""`/api/v1/audit`: who read which member's health data, and when; for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.audit import list_reads
from api.auth import Admin
from api.deps import Pool
from api.errors import error_responses
from api.params import AuditFilters
from api.schemas import AuditEntry

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "",
    response_model=list[AuditEntry],
    responses=error_responses(401, 403, 422, 503, _403="Only an admin token may read the audit log."),
)
async def read_audit(_: Admin, pool: Pool, filters: Annotated[AuditFilters, Query()]) -> list[AuditEntry]:
    """Reads of health data (readings, alerts, member cards, claims and their evidence), newest first."""
    async with pool.connection() as conn:
        rows = await list_reads(conn, member_id=filters.member_id, since=filters.since, limit=filters.limit)
    return [AuditEntry.model_validate(r) for r in rows]
