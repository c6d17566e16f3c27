"""The member's one-tap pages (`/r/{token}`, `/c/{token}`): plain HTML for any phone, large type, one big
button, no script, and the member's own clock."""

from __future__ import annotations

import html
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi.responses import HTMLResponse

# The token is in the URL: never cached, never passed on as a referrer, never indexed.
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
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
dl {{ margin: 1rem 0; }}
dt {{ font-weight: bold; margin-top: 0.75rem; }}
dd {{ margin: 0; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def page(status: int, title: str, body: str) -> HTMLResponse:
    """A page titled `title` (escaped here) around `body` (HTML the caller escaped)."""
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status, headers=HEADERS)


def when(at: datetime, timezone: str) -> str:
    """`at 14:05 on Sunday 22 November (Europe/Paris)`: the member's own clock."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = at.astimezone(zone)
    return f"at {local:%H:%M} on {local:%A} {local.day} {local:%B} ({timezone})"


def greeting(name: str | None) -> str:
    """`<p>Hello Ada,</p>`, or nothing without a name."""
    parts = (name or "").split()
    return f"<p>Hello {html.escape(parts[0])},</p>" if parts else ""
