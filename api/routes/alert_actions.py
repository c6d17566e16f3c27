"""`/api/v1/alerts/{id}/...`: what care managers do to an alert, and the log of who was told.

Each action answers the updated alert; its history names who did it and when. A change the alert's
status does not allow (acknowledging twice, acting on a resolved alert) is a 409 saying why.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException

from alerts.actions import CallDetails, act
from alerts.outreach_log import outreach_log
from alerts.queries import get_alert
from api.auth import Caller, Principal, check_member_visible
from api.deps import EscalationLadder, Pool
from api.errors import FieldError, error_responses
from api.params import AlertIdPath
from api.registry_sql import get_care_manager
from api.schemas import Alert, AssignIn, CallIn, NoteIn, OutreachEntry, ResolveIn, SnoozeIn
from vigil.alerting.ladder import DEFAULT_LADDER, Ladder
from vigil.alerting.lifecycle import (
    Acknowledge,
    ActionRefused,
    AddNote,
    Assign,
    Command,
    Escalate,
    LogCall,
    Resolve,
    Snooze,
)

router = APIRouter(prefix="/alerts", tags=["alerts"])

_REFUSED = "The alert's status does not allow this (e.g. it is resolved already); `detail` says why."
# Actions without a body cannot be too large.
_ACTION_ERRORS = error_responses(401, 403, 404, 409, 422, 503, _409=_REFUSED)
_ACTION_WITH_BODY_ERRORS = error_responses(401, 403, 404, 409, 413, 422, 503, _409=_REFUSED)


async def _act(
    pool: Pool,
    caller: Principal,
    alert_id: str,
    command: Command,
    *,
    ladder: Ladder = DEFAULT_LADDER,
    call: CallDetails | None = None,
    assignee: str | None = None,
) -> Alert:
    async with pool.connection() as conn:
        # The UUID the pattern admitted, not the client's text, is what SQL compares.
        row = await get_alert(conn, uuid.UUID(alert_id))
        if row is None:
            raise HTTPException(404, f"no alert has id {alert_id!r}")
        check_member_visible(caller, row["care_manager_id"])
        if assignee is not None and await get_care_manager(conn, assignee) is None:
            raise FieldError("care_manager_id", f"no care manager has id {assignee!r}")
        try:
            updated = await act(conn, row["id"], command, datetime.now(UTC), ladder=ladder, call=call)
        except ActionRefused as e:
            raise HTTPException(409, str(e)) from e
    return Alert.model_validate(updated)


@router.post("/{alert_id}/ack", response_model=Alert, responses=_ACTION_ERRORS)
async def acknowledge(alert_id: AlertIdPath, caller: Caller, pool: Pool) -> Alert:
    """Acknowledge: someone is on it, and the escalation ladder stops."""
    return await _act(pool, caller, alert_id, Acknowledge(by=caller.actor))


@router.post("/{alert_id}/resolve", response_model=Alert, responses=_ACTION_WITH_BODY_ERRORS)
async def resolve(alert_id: AlertIdPath, body: ResolveIn, caller: Caller, pool: Pool) -> Alert:
    """Resolve with an outcome (and a note); the ladder stops."""
    return await _act(pool, caller, alert_id, Resolve(by=caller.actor, outcome=body.outcome, note=body.note))


@router.post("/{alert_id}/escalate", response_model=Alert, responses=_ACTION_ERRORS)
async def escalate(alert_id: AlertIdPath, caller: Caller, pool: Pool, ladder: EscalationLadder) -> Alert:
    """Escalate by hand: the ladder's next step falls due now (after an acknowledgement, the ladder restarts
    from the step after the last one run); a snooze ends."""
    return await _act(pool, caller, alert_id, Escalate(by=caller.actor), ladder=ladder)


@router.post("/{alert_id}/snooze", response_model=Alert, responses=_ACTION_WITH_BODY_ERRORS)
async def snooze(alert_id: AlertIdPath, body: SnoozeIn, caller: Caller, pool: Pool) -> Alert:
    """Hold the ladder for `minutes`: a step falling due meanwhile runs when the snooze ends."""
    return await _act(pool, caller, alert_id, Snooze(by=caller.actor, minutes=body.minutes))


@router.post("/{alert_id}/notes", response_model=Alert, responses=_ACTION_WITH_BODY_ERRORS)
async def add_note(alert_id: AlertIdPath, body: NoteIn, caller: Caller, pool: Pool) -> Alert:
    """Add a note to the history (resolved alerts too)."""
    return await _act(pool, caller, alert_id, AddNote(by=caller.actor, text=body.text))


@router.post(
    "/{alert_id}/assign",
    response_model=Alert,
    responses=error_responses(
        401, 403, 404, 409, 413, 422, 503,
        _409=_REFUSED,
        _422="A malformed body, or `care_manager_id` names no registered care manager.",
    ),
)
async def assign(alert_id: AlertIdPath, body: AssignIn, caller: Caller, pool: Pool) -> Alert:
    """Assign (or reassign) the alert to a registered care manager."""
    command = Assign(by=caller.actor, care_manager_id=body.care_manager_id)
    return await _act(pool, caller, alert_id, command, assignee=body.care_manager_id)


@router.post("/{alert_id}/calls", response_model=Alert, responses=_ACTION_WITH_BODY_ERRORS)
async def log_call(alert_id: AlertIdPath, body: CallIn, caller: Caller, pool: Pool) -> Alert:
    """Log a call made about the alert; it completes the alert's open call tasks."""
    command = LogCall(by=caller.actor, outcome_text=body.note)
    return await _act(pool, caller, alert_id, command, call=CallDetails(reached=body.reached))


@router.get(
    "/{alert_id}/outreach", response_model=list[OutreachEntry], responses=error_responses(401, 403, 404, 422, 503)
)
async def read_outreach(alert_id: AlertIdPath, caller: Caller, pool: Pool) -> list[OutreachEntry]:
    """Every message sent or tried for the alert, oldest first: to whom, by which channel, and what came of it."""
    async with pool.connection() as conn:
        row = await get_alert(conn, uuid.UUID(alert_id))
        if row is None:
            raise HTTPException(404, f"no alert has id {alert_id!r}")
        check_member_visible(caller, row["care_manager_id"])
        entries = await outreach_log(conn, row["id"])
    return [OutreachEntry.model_validate(e) for e in entries]
