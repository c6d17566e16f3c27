"""`/api/v1/alerts`: what the rules raised, newest first, with evidence and history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime

from alerts.auth import Caller, check_member_visible
from alerts.deps import Pool
from alerts.registry import get_member
from alerts.schemas import Alert, AlertStatus, AlertType
from alerts.store import get_alert, list_alerts

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("", response_model=list[Alert])
async def search_alerts(
    caller: Caller,
    pool: Pool,
    member_id: str | None = None,
    device_id: str | None = None,
    status: AlertStatus | None = None,
    alert_type: Annotated[AlertType | None, Query(alias="type")] = None,
    since: Annotated[AwareDatetime | None, Query(description="raised at or after, RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Alert]:
    """Alerts by raised time, newest first; a care manager sees only their own members'."""
    async with pool.connection() as conn:
        if member_id is not None and not caller.is_admin:
            member = await get_member(conn, member_id)
            check_member_visible(caller, member["care_manager_id"] if member else None)
        rows = await list_alerts(
            conn,
            member_id=member_id,
            device_id=device_id,
            status=status,
            alert_type=alert_type,
            since=since,
            visible_to=None if caller.is_admin else caller.care_manager_id,
            limit=limit,
        )
    return [Alert.model_validate(r) for r in rows]


@router.get("/{alert_id}", response_model=Alert)
async def read_alert(alert_id: str, caller: Caller, pool: Pool) -> Alert:
    """One alert with its evidence and history; an id that is not a UUID is simply unknown."""
    try:
        uuid.UUID(alert_id)
    except ValueError:
        raise HTTPException(404, f"no alert has id {alert_id!r}") from None
    async with pool.connection() as conn:
        row = await get_alert(conn, alert_id)
    if row is None:
        raise HTTPException(404, f"no alert has id {alert_id!r}")
    check_member_visible(caller, row["care_manager_id"])
    return Alert.model_validate(row)
