"""`/health` and `/metrics`: unauthenticated, for operators' monitoring."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.health import check_components
from api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request) -> JSONResponse:
    """200 when every component is up, 503 otherwise, with each component's state.

    `pipeline` is up while ingest's heartbeats reach the database: they are sent only when ingest's
    probe has come back through its MQTT message loop, so a stuck ingest shows here as down.
    """
    states = await check_components(request.app.state.health_probes)
    body = Health(
        status="up" if all(states.values()) else "down",
        components={name: "up" if up else "down" for name, up in states.items()},
    )
    return JSONResponse(status_code=200 if body.status == "up" else 503, content=body.model_dump())


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
