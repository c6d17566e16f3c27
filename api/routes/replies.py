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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from alerts.actions import ReplyLinkExpired, UnknownReplyToken, resolve_by_reply_token
from alerts.reply_tokens import find_reply_alert
from api.deps import Pool
from vigil.alerting.messages import wording

router = APIRouter(prefix="/r", include_in_schema=False)

# The token is in the URL: never cached, never passed on as a referrer, never indexed.
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 1.25rem; line-height: 1.5; margin: 0 auto;
       max-width: 32rem; padding: 1.5rem; color: #111; }}
h1 {{ font-size: 1.75rem; }}
button {{ display: block; width: 100%; padding: 1.25rem; margin: 1.5rem 0; font-size: 1.75rem;
          font-weight: bold; color: #fff; background: #137333; border: 0; border-radius: 0.75rem; }}
.small {{ font-size: 1rem; color: #444; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""
_UNKNOWN = (
    "This link is not known",
    "<p>This link does not work. Please check that it was copied in full from the message.</p>"
    "<p>If you need help, call your care manager or the emergency number.</p>",
)


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status, headers=_HEADERS)


def _when(at: datetime, timezone: str) -> str:
    """`at 14:05 on Sunday 22 November (Europe/Paris)`: the member's own clock."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = at.astimezone(zone)
    return f"at {local:%H:%M} on {local:%A} {local.day} {local:%B} ({timezone})"


def _what(alert: dict[str, Any]) -> str:
    """`your wearable noticed a possible fall at 14:05 on ...`, in plain words."""
    words = wording(alert["type"])
    where = f" ({alert['location']})" if alert.get("location") else ""
    when = _when(alert["triggered_at"], alert["member_timezone"])
    return f"{words.source.capitalize()}{where} noticed {words.kind} {when}."


def _closed(alert: dict[str, Any]) -> HTMLResponse:
    if alert["outcome"] == "member_ok":
        text = "You have already told us that you are OK. Thank you: there is nothing more to do."
    else:
        text = "This alert has already been dealt with, so there is nothing more to do here."
    return _page(410, "Already dealt with", f"<p>{html.escape(text)}</p>")


@router.get("/{token}", response_class=HTMLResponse)
async def reply_page(token: str, pool: Pool) -> HTMLResponse:
    """What the alert is about and one big button, "I'm OK"."""
    async with pool.connection() as conn:
        alert = await find_reply_alert(conn, token)
    if alert is None:
        return _page(404, *_UNKNOWN)
    if alert["status"] == "resolved":
        return _closed(alert)
    name = alert["member_name"] or ""
    greeting = f"<p>Hello {html.escape(name.split()[0])},</p>" if name.strip() else ""
    body = (
        f"{greeting}<p>{html.escape(_what(alert))}</p>"
        "<p>If you are OK, press the button. We will tell your care manager.</p>"
        '<form method="post"><button type="submit">I\'m OK</button></form>'
        '<p class="small">If you need help, do not wait: call your care manager or the emergency number.</p>'
    )
    return _page(200, "Are you OK?", body)


@router.post("/{token}", response_class=HTMLResponse)
async def reply_ok(token: str, pool: Pool) -> HTMLResponse:
    """Resolve the alert as `member_ok`, by the member; the ladder stops and the console shows it."""
    async with pool.connection() as conn:
        try:
            await resolve_by_reply_token(conn, token, datetime.now(UTC))
        except UnknownReplyToken:
            return _page(404, *_UNKNOWN)
        except ReplyLinkExpired as e:
            return _closed(e.alert)
    return _page(
        200,
        "Thank you",
        "<p>Thank you for letting us know that you are OK.</p>"
        "<p>We have told your care manager, and Vigil will send no more messages about this alert.</p>",
    )
