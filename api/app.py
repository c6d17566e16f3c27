"""The FastAPI application, built from what the wiring hands in (real adapters or test fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from psycopg_pool import AsyncConnectionPool

from api.console.claim_pages import router as console_claims_router
from api.console.routes import router as console_router
from api.errors import ServiceUnavailable, install_error_handlers
from api.health import database_probe
from api.ports import BackgroundService, BrokerAccounts, CarePlanPublisher, HealthProbe
from api.routes import (
    alert_actions,
    alerts,
    audit,
    care_managers,
    claim_confirmations,
    claims,
    devices,
    gateways,
    health,
    incidents,
    members,
    replies,
    tasks,
)
from api.routes import care_plans as care_plan_routes
from vigil.care_plan_events import CarePlanChanged
from vigil.settings import Settings

API_PREFIX = "/api/v1"
# How long a request waits for a database connection before it answers 503.
POOL_TIMEOUT_S = 5.0
# Room for a gateway binding its full 10 000 devices; anything larger is not a registration.
MAX_BODY_BYTES = 1024 * 1024


def create_app(
    settings: Settings,
    accounts: BrokerAccounts,
    *,
    health_probes: Mapping[str, HealthProbe] | None = None,
    services: Sequence[BackgroundService] = (),
    care_plans: CarePlanPublisher | None = None,
) -> FastAPI:
    """The API; `database` joins `health_probes` in /health, `services` run for the app's lifetime.

    `care_plans` publishes care-plan changes (when it is a service too, it belongs in `services`);
    without it every change of a care plan answers 503.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=10,
            open=False,
            timeout=POOL_TIMEOUT_S,
            check=AsyncConnectionPool.check_connection,
            name="vigil-api",
        )
        # Without waiting: the API starts while PostgreSQL is down, and /health says so.
        await pool.open(wait=False)
        app.state.pool = pool
        app.state.health_probes = {"database": database_probe(pool), **(health_probes or {})}
        started: list[BackgroundService] = []
        try:
            for service in services:
                await service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await service.stop()
            await pool.close()

    app = FastAPI(title="Vigil", version="1", lifespan=lifespan, max_body_size=MAX_BODY_BYTES)
    app.state.settings = settings
    app.state.accounts = accounts
    app.state.care_plans = care_plans or _NoCarePlanPublisher()
    install_error_handlers(app)
    api = APIRouter(prefix=API_PREFIX)
    for module in (
        members, care_managers, care_plan_routes, devices, gateways, alerts, alert_actions, tasks, claims, incidents,
        audit,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(health.router)
    # The care-manager console: pages at `/`, `/alerts/{id}` and `/claims`, its live feed running for the
    # app's lifetime.
    app.include_router(console_router)
    app.include_router(console_claims_router)
    # The member's one-tap pages: "I'm OK" (`/r/{token}`) and "Send my claim" (`/c/{token}`).
    app.include_router(replies.router)
    app.include_router(claim_confirmations.router)
    return app


class _NoCarePlanPublisher:
    async def publish(self, event: CarePlanChanged) -> None:
        raise ServiceUnavailable("no Kafka producer is configured for care plans")
