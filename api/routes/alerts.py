"""`/api/v1/alerts`: what the rules raised, newest first, with evidence and history.

Alerts carry health data (their evidence), so each answer is recorded in the audit log.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from alerts.audit import LIST_ALERTS, READ_ALERT, record_read
from alerts.queries import get_alert, list_alerts
from api.auth import Caller, check_member_visible
from api.deps import Pool
from api.errors import error_responses
from api.params import AlertFilters, AlertIdPath
from api.registry_sql import get_member
from api.schemas import Alert

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get(
    "",
    response_model=list[Alert],
    responses=error_responses(401, 403, 422, 503, _403="`member_id` names a member not assigned to you."),
)
async def search_alerts(caller: Caller, pool: Pool, filters: Annotated[AlertFilters, Query()]) -> list[Alert]:
    """Alerts by raised time, newest first; a care manager sees only their own members'."""
    async with pool.connection() as conn:
        if filters.member_id is not None and not caller.is_admin:
            member = await get_member(conn, filters.member_id)
            check_member_visible(caller, member["care_manager_id"] if member else None)
        rows = await list_alerts(
            conn,
            member_id=filters.member_id,
            device_id=filters.device_id,
            status=filters.status,
            alert_type=filters.type,
            since=filters.since,
            visible_to=None if caller.is_admin else caller.care_manager_id,
            limit=filters.limit,
        )
        await record_read(conn, caller.actor, caller.role, LIST_ALERTS, filters.member_id, filters.query_text())
    return [Alert.model_validate(r) for r in rows]


@router.get("/{alert_id}", response_model=Alert, responses=error_responses(401, 403, 404, 422, 503))
async def read_alert(alert_id: AlertIdPath, caller: Caller, pool: Pool) -> Alert:
    """One alert with its evidence and history."""
    async with pool.connection() as conn:
        # The UUID the pattern admitted, not the client's text, is what SQL compares.
        row = await get_alert(conn, uuid.UUID(alert_id))
        if row is None:
            raise HTTPException(404, f"no alert has id {alert_id!r}")
        check_member_visible(caller, row["care_manager_id"])
        await record_read(conn, caller.actor, caller.role, READ_ALERT, row["member_id"], f"alert {row['id']}")
    return Alert.model_validate(row)
