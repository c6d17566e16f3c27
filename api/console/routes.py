"""The console's pages and forms: sign in, the live queue, an alert's page and its actions.

Thin: access is the API's (`Principal.may_see`), actions are `alerts.actions.act`, words and
layout live in `api.console.words` and the templates. Every form post answers with a redirect
(POST-redirect-GET) and a one-time message; a refused action is that message, never an error page.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from psycopg import AsyncConnection

from alerts.actions import CallDetails, act
from alerts.queries import get_alert
from alerts.tasks import TaskClosed, complete_task, get_task
from api.auth import Principal
from api.console import alert_page, queries, session
from api.console.feed import RESYNC, AlertFeed
from api.console.forms import ACTIONS, FormProblem, command_for, form_fields
from api.console.pages import cross_site, forbidden, principal_of, problem, redirect_with, render, to_sign_in
from api.deps import EscalationLadder, Pool
from api.registry_sql import get_care_manager
from vigil.alerting.ladder import Ladder
from vigil.alerting.lifecycle import ActionRefused, Assign, Command, LogCall
from vigil.channels import ALERTS_CHANNEL

# An event stream ends itself after this long and the browser reconnects (after RETRY_MS), reloading
# what it shows: a server shutting down waits for open responses, and this bounds that wait.
STREAM_LIFETIME_S = 10.0
RETRY_MS = 500
_STATIC = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
_STATIC_DIR = Path(__file__).parent / "static"
_TASK_WORDS = {"call": "Call", "claim_follow_up": "Follow-up"}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = app.state.pool

    async def owner_of(alert_id: str) -> tuple[bool, str | None]:
        async with pool.connection() as conn:
            return await queries.alert_owner(conn, alert_id)

    feed = AlertFeed(app.state.settings.database_url, owner_of)
    app.state.console_feed = feed
    await feed.start()
    try:
        yield
    finally:
        await feed.stop()


router = APIRouter(lifespan=_lifespan, include_in_schema=False, default_response_class=HTMLResponse)


async def _not_found(request: Request, pool: Pool, principal: Principal | None) -> Response:
    return await problem(
        request, pool, principal, 404, "No such alert",
        "There is no alert at this address. It may have been mistyped; the queue lists every open alert.",
    )


def _alert_uuid(alert_id: str) -> str | None:
    try:
        return str(uuid.UUID(alert_id))
    except ValueError:
        return None


@router.get("/")
async def home(request: Request, pool: Pool) -> Response:
    """The queue, or the sign-in form (saying why when a session just ended)."""
    try:
        principal = await session.signed_in(request, pool)
    except session.SignedOut as e:
        response = await render(request, pool, None, "sign_in.html",
                                {"reason": e.reason, "next": session.local_path(request.query_params.get("next"))})
        if e.reason is not None:
            session.end_session(response, request)
        return response
    return await render(request, pool, principal, "queue.html", await _queue_context(request, pool, principal))


async def _queue_context(request: Request, pool: Pool, principal: Principal) -> dict[str, Any]:
    # Read before the queue: a change after this moment makes the page resync.
    position = request.app.state.console_feed.position
    async with pool.connection() as conn:
        alerts, total = await queries.queue(conn, principal.care_manager_id)
        tasks = await queries.open_tasks(conn, principal.care_manager_id)
    return {"alerts": alerts, "total": total, "tasks": tasks, "feed_position": position}


@router.post("/console/sign-in")
async def sign_in(request: Request, pool: Pool) -> Response:
    """Check the posted token as the API would, then carry it in the session cookie."""
    fields = form_fields(await request.body())
    target = session.local_path(fields.get("next"))
    if not session.same_origin(request):
        return await problem(request, pool, None, 403, "Sign-in refused",
                             "The sign-in form was posted from another site.")
    token = fields.get("token", "").strip()
    try:
        if not token:
            raise session.SignedOut("no token was entered")
        await session.check_token(request, pool, token)
    except session.SignedOut as e:
        return await render(request, pool, None, "sign_in.html",
                            {"error": f"That token was not accepted: {e.reason}.", "next": target}, 401)
    response = RedirectResponse(target, status_code=303)
    session.start_session(response, request, token)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    """Forget the token: the browser drops the cookie (the token itself stays valid for the API)."""
    response = RedirectResponse("/", status_code=303)
    if session.same_origin(request):
        session.end_session(response, request)
    return response


@router.get("/console/queue")
async def queue_fragment(request: Request, pool: Pool) -> Response:
    """The queue and task lists alone, for the page script to swap in when something changed."""
    principal = await principal_of(request, pool)
    if principal is None:
        return PlainTextResponse("sign in first", 401)
    return await render(request, pool, principal, "_queue.html", await _queue_context(request, pool, principal))


@router.get("/console/events")
async def events(request: Request, pool: Pool) -> Response:
    """Server-sent events: the id of each alert of the caller's that changed, or `resync`."""
    principal = await principal_of(request, pool)
    if principal is None:
        return PlainTextResponse("sign in first", 401)
    feed: AlertFeed = request.app.state.console_feed
    subscription = feed.subscribe(principal, STREAM_LIFETIME_S)
    # Where the page's content was read: the browser's last event id, or the page's own on a first connect.
    since = request.headers.get("last-event-id") or request.query_params.get("since")

    async def stream() -> AsyncIterator[str]:
        try:
            yield f"retry: {RETRY_MS}\n\n"
            if since != feed.position:
                yield _event(feed.position, RESYNC)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STREAM_LIFETIME_S
            while (left := deadline - loop.time()) > 0:
                try:
                    position, alert_id = await asyncio.wait_for(subscription.queue.get(), left)
                except TimeoutError:
                    break
                yield _event(position, alert_id)
        finally:
            feed.unsubscribe(subscription)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _event(position: str, item: str | None) -> str:
    """One event: `resync`, `alert` with its id, or only the new position (a change the caller may not see)."""
    if item is None:
        return f"id: {position}\n\n"
    kind = "resync" if item == RESYNC else "alert"
    return f"id: {position}\nevent: {kind}\ndata: {'' if item == RESYNC else item}\n\n"


@router.get("/console/static/{name}")
async def static(name: str) -> Response:
    """The stylesheet, the page script and the icon, served by the API itself: no CDN, no build step."""
    if name not in _STATIC:
        return PlainTextResponse("not found", 404)
    return FileResponse(_STATIC_DIR / name, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})


async def _visible_alert(conn: AsyncConnection, principal: Principal, alert_id: str) -> tuple[dict | None, int]:
    """The alert when the caller may see it, else None and the status that says why (404 or 403)."""
    alert = await get_alert(conn, alert_id)
    if alert is None:
        return None, 404
    if not principal.may_see(alert["care_manager_id"]):
        return None, 403
    return alert, 200


async def _refused(request: Request, pool: Pool, principal: Principal, status_code: int) -> Response:
    if status_code == 403:
        return await forbidden(request, pool, principal)
    return await _not_found(request, pool, principal)


@router.get("/alerts/{alert_id}")
async def alert_view(alert_id: str, request: Request, pool: Pool) -> Response:
    """One alert: member card, chart, evidence, history, outreach and the actions."""
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    if (uid := _alert_uuid(alert_id)) is None:
        return await _not_found(request, pool, principal)
    now = datetime.now(UTC)
    # Read before the alert: a change after this moment makes the page resync.
    position = request.app.state.console_feed.position
    async with pool.connection() as conn:
        alert, status_code = await _visible_alert(conn, principal, uid)
        if alert is not None:
            viewer = await queries.viewer(conn, principal.care_manager_id)
            tz = (viewer and viewer["timezone"]) or "UTC"
            page = await alert_page.full_page(conn, alert, principal, tz, now)
    if alert is None:
        return await _refused(request, pool, principal, status_code)
    return await render(request, pool, principal, "alert.html", {**page, "feed_position": position})


@router.get("/alerts/{alert_id}/live")
async def alert_live(alert_id: str, request: Request, pool: Pool) -> Response:
    """The parts of an alert's page that change while it is open, for the page script to swap in."""
    principal = await principal_of(request, pool)
    if principal is None:
        return PlainTextResponse("sign in first", 401)
    if (uid := _alert_uuid(alert_id)) is None:
        return PlainTextResponse("no such alert", 404)
    async with pool.connection() as conn:
        alert, status_code = await _visible_alert(conn, principal, uid)
        if alert is not None:
            member = await queries.member(conn, alert["member_id"])
            live = await alert_page.live_part(conn, alert)
    if alert is None:
        return PlainTextResponse("not shown", status_code)
    return await render(request, pool, principal, "_alert_live.html",
                        {**live, "member_name": member["name"] if member else None})


@router.post("/alerts/{alert_id}/{action}")
async def alert_action(alert_id: str, action: str, request: Request, pool: Pool, ladder: EscalationLadder) -> Response:
    """Acknowledge, resolve, note, assign, snooze, escalate or log a call; back to the alert's page."""
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    if (uid := _alert_uuid(alert_id)) is None or action not in ACTIONS:
        return await _not_found(request, pool, principal)
    if not session.same_origin(request):
        return await cross_site(request, pool, principal)
    page = f"/alerts/{uid}"
    try:
        fields = form_fields(await request.body())
        command, done = command_for(action, fields, principal.actor)
    except FormProblem as e:
        return redirect_with(request, page, "error", str(e))
    async with pool.connection() as conn:
        alert, status_code = await _visible_alert(conn, principal, uid)
        if alert is not None:
            kind, text = await _apply(conn, uid, command, fields, ladder)
    if alert is None:
        return await _refused(request, pool, principal, status_code)
    return redirect_with(request, page, kind, done if kind == "ok" else text)


async def _apply(
    conn: AsyncConnection, alert_id: str, command: Command, fields: dict[str, str], ladder: Ladder
) -> tuple[str, str]:
    """Act on the alert: ("ok", "") or ("error", the sentence saying why not)."""
    if isinstance(command, Assign) and await get_care_manager(conn, command.care_manager_id) is None:
        return "error", f"No care manager has the id {command.care_manager_id!r}."
    call = None
    if isinstance(command, LogCall):
        call = CallDetails(reached={"yes": True, "no": False}.get(fields.get("reached", "")))
    try:
        await act(conn, alert_id, command, datetime.now(UTC), ladder=ladder, call=call)
    except ActionRefused as e:
        return "error", f"{str(e).rstrip('.')}."
    return "ok", ""


@router.post("/console/tasks/{task_id}/done")
async def task_done(task_id: int, request: Request, pool: Pool) -> Response:
    """Tick off a call or check-in task; back to the queue."""
    principal = await principal_of(request, pool)
    if principal is None:
        return to_sign_in(request)
    if not session.same_origin(request):
        return await cross_site(request, pool, principal)
    async with pool.connection() as conn, conn.transaction():
        task = await get_task(conn, task_id, lock=True)
        allowed = task is not None and principal.may_see(task["care_manager_id"])
        if allowed:
            kind, text = await _complete(conn, task, principal)
    if task is None:
        return redirect_with(request, "/", "error", "That task no longer exists.")
    if not allowed:
        return await forbidden(request, pool, principal, "task")
    return redirect_with(request, "/", kind, text)


async def _complete(conn: AsyncConnection, task: dict[str, Any], principal: Principal) -> tuple[str, str]:
    """Mark the task done: ("ok", what to say) or ("error", why not)."""
    try:
        await complete_task(conn, task["id"], by=principal.actor, note=None, now=datetime.now(UTC))
    except TaskClosed as e:
        return "error", f"{str(e).capitalize()}."
    if task["alert_id"]:
        # Other open consoles of this member's care manager refresh their task list.
        await conn.execute("SELECT pg_notify(%s, %s)", (ALERTS_CHANNEL, task["alert_id"]))
    return "ok", f"{_TASK_WORDS.get(task['kind'], 'Check-in')} done."
