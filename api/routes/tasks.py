"""`/api/v1/tasks`: the care manager's work list (calls to members who do not use apps, check-ins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from alerts.tasks import TaskClosed, complete_task, get_task, list_tasks
from api.auth import Caller, check_member_visible
from api.deps import Pool
from api.errors import error_responses
from api.params import TaskFilters, TaskIdPath
from api.registry_sql import get_member
from api.schemas import Task, TaskDoneIn

router = APIRouter(prefix="/tasks", tags=["tasks"])


@router.get(
    "",
    response_model=list[Task],
    responses=error_responses(401, 403, 422, 503, _403="`member_id` names a member not assigned to you."),
)
async def search_tasks(caller: Caller, pool: Pool, filters: Annotated[TaskFilters, Query()]) -> list[Task]:
    """Tasks soonest due first (open ones unless `status` says otherwise); a care manager sees their own members'."""
    async with pool.connection() as conn:
        if filters.member_id is not None and not caller.is_admin:
            member = await get_member(conn, filters.member_id)
            check_member_visible(caller, member["care_manager_id"] if member else None)
        rows = await list_tasks(
            conn,
            status=filters.status,
            kind=filters.kind,
            member_id=filters.member_id,
            visible_to=None if caller.is_admin else caller.care_manager_id,
            limit=filters.limit,
        )
    return [Task.model_validate(r) for r in rows]


@router.post(
    "/{task_id}/done",
    response_model=Task,
    responses=error_responses(401, 403, 404, 409, 413, 422, 503, _409="The task is done or cancelled already."),
)
async def finish_task(task_id: TaskIdPath, caller: Caller, pool: Pool, body: TaskDoneIn | None = None) -> Task:
    """Mark a task done, with an optional note of what came of it."""
    async with pool.connection() as conn, conn.transaction():
        task = await get_task(conn, task_id)
        if task is None:
            raise HTTPException(404, f"no task has id {task_id}")
        check_member_visible(caller, task["care_manager_id"])
        note = body.note if body is not None else None
        try:
            done = await complete_task(conn, task_id, by=caller.actor, note=note, now=datetime.now(UTC))
        except TaskClosed as e:
            raise HTTPException(409, str(e)) from e
    return Task.model_validate(done)
