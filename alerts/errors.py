"""Error answers: every failure is JSON naming what was wrong, and never a traceback.

Shapes: a 422 answers `{"detail": [{"field": "policy.line", "message": ..., "type": ..., "loc": [...]}]}`
(`field` is the dotted path inside the body, or the query/path parameter's name; `loc` is FastAPI's
own location, kept for clients that already read it). Every other error answers
`{"detail": "<sentence>"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class FieldError(Exception):
    """A well-formed request that names something unusable, e.g. a member that does not exist."""

    def __init__(self, field: str, message: str, *, source: str = "body") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.source = source


class ServiceUnavailable(Exception):
    """A dependency (the MQTT broker, the database) could not do its part; the client may retry."""


def field_name(loc: Sequence[Any]) -> str:
    """`("body", "policy", "line")` -> `policy.line`; a whole-body problem is `body`."""
    where = list(loc)
    if where and where[0] in ("body", "query", "path", "header", "cookie"):
        source = where.pop(0)
        # A body that is not JSON at all is located by character offset, which names nothing.
        if source == "body" and (not where or isinstance(where[0], int)):
            return "body"
    return ".".join(str(part) for part in where) or "request"


def field_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """FastAPI's validation errors in the API's shape, with pydantic's message prefixes dropped."""
    result = []
    for err in errors:
        message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        result.append(
            {
                "field": field_name(err.get("loc", ())),
                "message": message,
                "type": err.get("type", "value_error"),
                "loc": list(err.get("loc", ())),
            }
        )
    return result


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": field_errors(exc.errors())}))


async def _unusable_field(request: Request, exc: FieldError) -> JSONResponse:
    detail = {
        "field": exc.field,
        "message": exc.message,
        "type": "value_error",
        "loc": [exc.source, exc.field],
    }
    return JSONResponse(status_code=422, content={"detail": [detail]})


async def _unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
    return JSONResponse(status_code=503, content={"detail": str(exc)})


async def _database_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
    log.error("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(status_code=503, content={"detail": "the database is unavailable; try again shortly"})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error during %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"detail": "internal error; it has been logged"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(FieldError, _unusable_field)
    app.add_exception_handler(ServiceUnavailable, _unavailable)
    # PoolTimeout is an OperationalError too: no connection to be had within the pool's timeout.
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
