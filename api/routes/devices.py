"""`/api/v1/devices`: registration with MQTT credentials, and stored readings."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from alerts.audit import READ_READINGS, record_read
from api.auth import Admin, Caller, check_member_visible
from api.deps import Accounts, Pool
from api.errors import FieldError, error_responses
from api.params import DeviceIdPath, ReadingFilters
from api.provisioning import provision
from api.readings import device_readings
from api.registry_sql import get_device, get_member, insert_device
from api.schemas import DeviceCredentials, DeviceIn, Reading

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post(
    "",
    status_code=201,
    response_model=DeviceCredentials,
    responses=error_responses(
        401, 403, 409, 413, 422, 503, _503="The MQTT broker or the database did not answer; nothing was registered."
    ),
)
async def register_device(body: DeviceIn, _: Admin, pool: Pool, accounts: Accounts) -> DeviceCredentials:
    """Register a device and create its broker login; the password is shown only in this answer."""
    password = secrets.token_urlsafe(24)
    async with pool.connection() as conn, conn.transaction():
        if await get_member(conn, body.member_id) is None:
            raise FieldError("member_id", f"no member has id {body.member_id!r}")
        row = await insert_device(conn, body.model_dump())
        if row is None:
            raise HTTPException(409, f"device {body.device_id!r} is already registered")
        # Still inside the transaction: if the broker fails, the device row is rolled back with it.
        await provision(accounts.ensure_device, body.device_id, password, what=f"device {body.device_id!r}")
    return DeviceCredentials(**row, mqtt_password=password)


@router.get(
    "/{device_id}/readings", response_model=list[Reading], responses=error_responses(401, 403, 404, 422, 503)
)
async def list_readings(
    device_id: DeviceIdPath, caller: Caller, pool: Pool, filters: Annotated[ReadingFilters, Query()]
) -> list[Reading]:
    """Stored readings, newest event time first; each answer is recorded in the audit log."""
    async with pool.connection() as conn:
        device = await get_device(conn, device_id)
        if device is None:
            raise HTTPException(404, f"no device has id {device_id!r}")
        check_member_visible(caller, device["care_manager_id"])
        rows = await device_readings(
            conn, device_id, metric=filters.metric, since=filters.since, until=filters.until, limit=filters.limit
        )
        subject = f"device {device_id}?{filters.query_text()}"
        await record_read(conn, caller.actor, caller.role, READ_READINGS, device["member_id"], subject)
    return [Reading.model_validate(r) for r in rows]
