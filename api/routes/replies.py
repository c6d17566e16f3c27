"""`/r/{token}`: the member's one-tap "I'm OK" (CONTRACT §5), plain HTML for any phone, no script.

The token in the link is the credential (members have no API token): `GET` shows what the alert is
about and one button, `POST` resolves the alert as `member_ok`. The link works for its alert only and
stops working once that alert is resolved. The pages are for people, so they are not in the API's
OpenAPI schema.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from alerts.actions import ReplyLinkExpired, UnknownReplyToken, resolve_by_reply_token
from alerts.reply_tokens import find_reply_alert
from api.deps import Pool
from api.member_page import greeting, page, when
from vigil.alerting.messages import wording

router = APIRouter(prefix="/r", include_in_schema=False)

_UNKNOWN = (
    "This link is not known",
    "<p>This link does not work. Please check that it was copied in full from the message.</p>"
    "<p>If you need help, call your care manager or the emergency number.</p>",
)


def _what(alert: dict[str, Any]) -> str:
    """`your wearable noticed a possible fall at 14:05 on ...`, in plain words."""
    words = wording(alert["type"])
    where = f" ({alert['location']})" if alert.get("location") else ""
    at = when(alert["triggered_at"], alert["member_timezone"])
    return f"{words.source.capitalize()}{where} noticed {words.kind} {at}."


def _closed(alert: dict[str, Any]) -> HTMLResponse:
    if alert["outcome"] == "member_ok":
        text = "You have already told us that you are OK. Thank you: there is nothing more to do."
    else:
        text = "This alert has already been dealt with, so there is nothing more to do here."
    return page(410, "Already dealt with", f"<p>{html.escape(text)}</p>")


@router.get("/{token}", response_class=HTMLResponse)
async def reply_page(token: str, pool: Pool) -> HTMLResponse:
    """What the alert is about and one big button, "I'm OK"."""
    async with pool.connection() as conn:
        alert = await find_reply_alert(conn, token)
    if alert is None:
        return page(404, *_UNKNOWN)
    if alert["status"] == "resolved":
        return _closed(alert)
    body = (
        f"{greeting(alert['member_name'])}<p>{html.escape(_what(alert))}</p>"
        "<p>If you are OK, press the button. We will tell your care manager.</p>"
        '<form method="post"><button type="submit">I\'m OK</button></form>'
        '<p class="small">If you need help, do not wait: call your care manager or the emergency number.</p>'
    )
    return page(200, "Are you OK?", body)


@router.post("/{token}", response_class=HTMLResponse)
async def reply_ok(token: str, pool: Pool) -> HTMLResponse:
    """Resolve the alert as `member_ok`, by the member; the ladder stops and the console shows it."""
    async with pool.connection() as conn:
        try:
            await resolve_by_reply_token(conn, token, datetime.now(UTC))
        except UnknownReplyToken:
            return page(404, *_UNKNOWN)
        except ReplyLinkExpired as e:
            return _closed(e.alert)
    return page(
        200,
        "Thank you",
        "<p>Thank you for letting us know that you are OK.</p>"
        "<p>We have told your care manager, and Vigil will send no more messages about this alert.</p>",
    )
