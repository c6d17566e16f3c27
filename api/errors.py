"""Error answers: every failure is JSON naming what was wrong, and never a traceback.

Two bodies, both `{"detail": ...}` and both declared in the OpenAPI schema for every status a route
really answers (`error_responses`):
- 422 (`FieldErrors`): `{"detail": [{"field": "policy.line", "message": ..., "type": ..., "loc": [...]}]}`;
  `field` is the dotted path inside the body, or the query/path parameter's name; `loc` is FastAPI's
  own location, kept for clients that already read it.
- 401, 403, 404, 409, 413, 503 (`ErrorMessage`): `{"detail": "<sentence>"}`.

A body that cannot be read at all (not UTF-8, nested too deep for the JSON parser) is a 422 on `body`
like one that is not JSON, not FastAPI's 400; a value the database refuses for its content is a 422
too, as a last line behind the validation that should have caught it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class FieldProblem(BaseModel):
    """One thing wrong with a request, named by the field it is in."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="Dotted path inside the body (`policy.line`), or the parameter's name.")
    message: str
    type: str = Field(description="A machine-readable kind, e.g. `missing`, `string_pattern_mismatch`.")
    loc: list[str | int] = Field(description="FastAPI's location: `body`, `query` or `path`, then the path.")


class FieldErrors(BaseModel):
    """422: the request names the field(s) it got wrong, every problem at once."""

    model_config = ConfigDict(extra="forbid")

    detail: list[FieldProblem]


class ErrorMessage(BaseModel):
    """Every other error: one sentence saying what went wrong."""

    model_config = ConfigDict(extra="forbid")

    detail: str


_UNDECODABLE_BODY = "There was an error parsing the body"
_DESCRIPTIONS = {
    401: "No token, or one that is unknown, revoked or expired.",
    403: "The token may not do this, or the member is not assigned to the calling care manager.",
    404: "No such id.",
    409: "The id is taken already.",
    413: "The body is larger than the API accepts.",
    422: "A malformed id, filter or body; `detail` names each field.",
    503: "A dependency (the database, the MQTT or Kafka broker) did not answer in time; nothing was changed.",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering `codes`; `descriptions` (`_404="..."`) says more for that route."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        model = FieldErrors if code == 422 else ErrorMessage
        responses[code] = {"model": model, "description": descriptions.get(f"_{code}", _DESCRIPTIONS[code])}
        if code == 413:
            # Starlette's body limit answers a declared Content-Length that is too large itself, in plain text.
            responses[code]["content"] = {"text/plain": {"schema": {"type": "string"}}}
    return responses


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


def _problem(field: str, message: str, kind: str, loc: list[str | int]) -> JSONResponse:
    body = {"field": field, "message": message, "type": kind, "loc": loc}
    return JSONResponse(status_code=422, content={"detail": [body]})


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": field_errors(exc.errors())}))


async def _unusable_field(request: Request, exc: FieldError) -> JSONResponse:
    return _problem(exc.field, exc.message, "value_error", [exc.source, exc.field])


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # FastAPI's answer to a JSON body it could not decode (bytes that are not UTF-8, nesting deeper than
    # Python's parser goes). To a client that is a body that is not JSON, which FastAPI answers with 422.
    if exc.status_code == 400 and exc.detail == _UNDECODABLE_BODY:
        return _problem("body", "is not readable as UTF-8 JSON", "json_invalid", ["body"])
    if exc.status_code == 405:
        # Starlette's Allow names only the first route of the path (PUT), not its others (GET).
        exc = StarletteHTTPException(405, exc.detail, headers={"Allow": _allowed_methods(request)})
    return await http_exception_handler(request, exc)


def _allowed_methods(request: Request) -> str:
    """Every method the published schema offers at the request's path."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        # Templates are the API's own paths: letters, digits, `_`, `/` and `{parameters}`.
        if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods))


async def _refused_by_database(request: Request, exc: psycopg.DataError | psycopg.IntegrityError) -> JSONResponse:
    # Validation should have refused the value before SQL; the warning says which route let it through.
    log.warning("the database refused a value during %s %s: %s", request.method, request.url.path,
                type(exc).__name__)
    return _problem("request", "holds a value the database cannot store", "value_error", [])


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
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ServiceUnavailable, _unavailable)
    app.add_exception_handler(psycopg.DataError, _refused_by_database)
    app.add_exception_handler(psycopg.IntegrityError, _refused_by_database)
    # PoolTimeout is an OperationalError too: no connection to be had within the pool's timeout.
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
