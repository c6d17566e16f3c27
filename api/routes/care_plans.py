"""`/api/v1/members/{id}/care_plan`: a member's overrides of the default rules."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError

from api.auth import Caller, check_member_visible
from api.care_plan_documents import (
    effective_rules,
    next_plan,
    override_errors,
    plan_changed,
    plan_problems,
    stored_plan,
)
from api.care_plan_publisher import plan_transaction
from api.deps import CarePlans, Pool
from api.errors import error_responses
from api.params import MemberIdPath
from api.registry_sql import lock_care_plan, read_care_plan, store_care_plan
from api.schemas import CarePlan, CarePlanIn, CarePlanView

router = APIRouter(prefix="/members", tags=["care plans"])

_ERRORS = {"_403": "The member is not assigned to the calling care manager.", "_404": "No member has this id."}


@router.put(
    "/{member_id}/care_plan",
    response_model=CarePlan,
    responses=error_responses(
        401, 403, 404, 413, 422, 503,
        **_ERRORS,
        _422="An override names an unknown rule or parameter, or a value it cannot take.",
        _503="Kafka did not acknowledge the change in time, or the database did not answer; nothing was changed.",
    ),
)
async def put_care_plan(
    member_id: MemberIdPath, body: CarePlanIn, caller: Caller, pool: Pool, care_plans: CarePlans
) -> CarePlan:
    """Replace a member's care plan (an admin, or the member's care manager).

    Body: `{"overrides": {<alert type>: {"enabled": <bool>, <parameter>: <number>, ...}}, "note": "..."}`,
    e.g. `{"overrides": {"tachycardia": {"tiers.0.threshold": 130, "tiers.0.minutes": 15},
    "water_leak": {"enabled": false}}, "note": "athlete; leak probe under the washing machine"}`.
    The parameters are the rule's numeric ones, named as `GET` lists them under `overridable`
    (`tiers.<i>.<field>` for the rules with severity tiers). `overrides` replaces the whole previous
    set (`{}` returns to the defaults). An unknown rule or parameter, or a value the rule cannot take
    (a duration of -5 minutes, a clear threshold that meets the raise threshold), is a 422 naming
    `overrides.<type>.<parameter>`, every problem at once; nothing falls back silently to a default.

    Answers the stored plan, its `version` one higher than before. The change is on the stream
    worker's care-plans topic, acknowledged by Kafka, before the answer: it takes effect without a
    restart. When Kafka does not acknowledge it within a few seconds the answer is 503 and nothing
    was changed (the database keeps the previous plan); send the same request again.
    """
    at = datetime.now(UTC)
    async with pool.connection() as conn, plan_transaction(conn, care_plans) as outbox:
        row = await lock_care_plan(conn, member_id)
        if row is None:
            raise HTTPException(404, f"no member has id {member_id!r}")
        check_member_visible(caller, row["care_manager_id"])
        if errors := override_errors(body.overrides, "overrides"):
            raise RequestValidationError(errors)
        plan = next_plan(stored_plan(row["care_plan"]), body.overrides, body.note, at, caller)
        await store_care_plan(conn, member_id, plan)
        await outbox.publish(plan_changed(member_id, plan, at), "the care plan was not changed")
    return CarePlan(member_id=member_id, **plan)


@router.get(
    "/{member_id}/care_plan", response_model=CarePlanView, responses=error_responses(401, 403, 404, 422, 503, **_ERRORS)
)
async def get_care_plan(member_id: MemberIdPath, caller: Caller, pool: Pool) -> CarePlanView:
    """A member's care plan and what applies to them (an admin, or the member's care manager).

    `rules` holds every rule by alert type: `enabled`, what the plan `overridden`, each parameter a
    plan may set under `overridable` (`type`, `value` in force, `default`), and the whole effective
    rule description under `parameters` (the defaults with the overrides merged in).
    """
    async with pool.connection() as conn:
        row = await read_care_plan(conn, member_id)
    if row is None:
        raise HTTPException(404, f"no member has id {member_id!r}")
    check_member_visible(caller, row["care_manager_id"])
    plan = stored_plan(row["care_plan"])
    # A plan stored before the rules changed may no longer fit them; the stream worker then applies
    # the defaults, and so does this view, saying why.
    problems = plan_problems(plan["overrides"])
    rules = effective_rules({} if problems else plan["overrides"])
    return CarePlanView(member_id=member_id, rules=rules, problems=problems, **plan)
