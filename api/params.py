"""Path and query parameters in the shapes the API issues: each one closed, so a malformed value (a NUL
byte, a `urn:uuid:` form of an alert id, a unix number for a time) or a misspelt filter is a 422 naming
it before anything reaches SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from api.schemas import AlertStatus, AlertType, ClaimStatus
from vigil.telemetry import DEVICE_ID_PATTERN, METRICS, Rfc3339DateTime
from vigil.timefmt import utc_text

# The alert ids the API issues: a UUID in its canonical hyphenated form (either case), nothing else.
ALERT_ID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"

# Member ids are `mbr_<hex>` or chosen by the client with the shape of a device id.
MemberIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
DeviceIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
AlertIdPath = Annotated[str, Path(pattern=ALERT_ID_PATTERN, description="An alert id: a UUID.")]
CareManagerIdPath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
# Claim ids are UUIDs too (derived from the incident's id).
ClaimIdPath = Annotated[str, Path(pattern=ALERT_ID_PATTERN, description="A claim id: a UUID.")]
# Task ids are PostgreSQL bigserials: anything past their range names no task.
TaskIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]
_Id = Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]
# The metrics of docs/devices.md, listed in the OpenAPI schema.
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]


class _Filters(BaseModel):
    # `?stauts=open` would otherwise be ignored and answer every alert as if it were a match.
    model_config = ConfigDict(extra="forbid")

    def query_text(self) -> str:
        """The filters in force as a query string (`member_id=m-1&limit=100`), for the audit log."""
        given = {name: getattr(self, name) for name in type(self).model_fields if getattr(self, name) is not None}
        return urlencode({k: utc_text(v) if isinstance(v, datetime) else v for k, v in given.items()})


class AlertFilters(_Filters):
    """`GET /alerts` query parameters."""

    member_id: _Id | None = None
    device_id: _Id | None = None
    status: AlertStatus | None = None
    type: AlertType | None = None
    since: Annotated[Rfc3339DateTime | None, Field(description="raised at or after, RFC 3339")] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class ReadingFilters(_Filters):
    """`GET /devices/{id}/readings` query parameters."""

    metric: MetricName | None = None
    since: Annotated[Rfc3339DateTime | None, Field(description="inclusive, RFC 3339")] = None
    until: Annotated[Rfc3339DateTime | None, Field(description="exclusive, RFC 3339")] = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 1000


class TaskFilters(_Filters):
    """`GET /tasks` query parameters."""

    status: Literal["open", "done", "cancelled"] = "open"
    kind: Literal["call", "check_in", "claim_follow_up"] | None = None
    member_id: _Id | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 200


class ClaimFilters(_Filters):
    """`GET /claims` query parameters."""

    member_id: _Id | None = None
    status: ClaimStatus | None = None
    green_channel: Annotated[
        bool | None, Field(description="true: only claims for a dedicated handler; false: only the others")
    ] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class IncidentFilters(_Filters):
    """`GET /incidents` query parameters."""

    member_id: _Id | None = None
    outcome: Annotated[
        Literal["claim", "no_claim", "pending"] | None,
        Field(description="claim: a claim was opened; no_claim: none was owed or it could not be built "
                          "(`decision` says why); pending: waiting for its alert to end"),
    ] = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class AuditFilters(_Filters):
    """`GET /audit` query parameters."""

    member_id: _Id | None = None
    since: Annotated[Rfc3339DateTime | None, Field(description="at or after, RFC 3339")] = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 500
