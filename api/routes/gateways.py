"""`/api/v1/gateways`: hubs and partner clouds that publish for several devices."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException

from api.auth import Admin
from api.deps import Accounts, Pool
from api.errors import FieldError, error_responses
from api.provisioning import provision
from api.registry_sql import bind_gateway, claim_gateway, missing_devices
from api.schemas import GatewayCredentials, GatewayIn

router = APIRouter(prefix="/gateways", tags=["gateways"])


@router.post(
    "",
    status_code=201,
    response_model=GatewayCredentials,
    responses=error_responses(
        401, 403, 409, 413, 422, 503, _503="The MQTT broker or the database did not answer; nothing was registered."
    ),
)
async def register_gateway(body: GatewayIn, _: Admin, pool: Pool, accounts: Accounts) -> GatewayCredentials:
    """Register a gateway for registered devices; the password is shown only in this answer."""
    device_ids = list(dict.fromkeys(body.device_ids))
    password = secrets.token_urlsafe(24)
    async with pool.connection() as conn, conn.transaction():
        missing = await missing_devices(conn, device_ids)
        if missing:
            raise FieldError("device_ids", f"not registered: {', '.join(missing)}")
        row = await claim_gateway(conn, body.id, body.name)
        if row is None:
            raise HTTPException(409, f"gateway {body.id!r} is already registered")
        # Still inside the transaction: if the broker fails, the gateway row is rolled back with it.
        username = await provision(
            accounts.ensure_gateway, body.id, device_ids, password, what=f"gateway {body.id!r}"
        )
        await bind_gateway(conn, body.id, device_ids, username)
    return GatewayCredentials(
        id=body.id,
        name=body.name,
        device_ids=device_ids,
        mqtt_username=username,
        mqtt_password=password,
        created_at=row["created_at"],
    )
