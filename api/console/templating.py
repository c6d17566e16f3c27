"""The console's Jinja2 environment: templates shipped in the package, autoescaped, with the words as filters.

Times are shown in the viewer's time zone (`tz` in every page's context) relative to `now`, the
moment the page was made, so that one page never mixes two clocks.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from jinja2.runtime import Context

from api.console import words
from vigil.timefmt import utc_text

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
_ACTOR = re.compile(r"care_manager:[A-Za-z0-9_-]+")


@pass_context
def _clock(context: Context, moment: datetime | str | None) -> str:
    """A time from a column, or from JSON (history, evidence) where it is RFC 3339 text."""
    if isinstance(moment, str):
        moment = words.parse_time(moment)
    return words.clock(moment, context["tz"], context["now"])


@pass_context
def _ago(context: Context, moment: datetime | None) -> str:
    return "—" if moment is None else words.duration((context["now"] - moment).total_seconds())


@pass_context
def _who(context: Context, actor: Any) -> str:
    """An actor as histories write it (`care_manager:cm-1`, `admin:tok_...`, `vigil`) as a person reads it."""
    text = str(actor or "")
    kind, _, ident = text.partition(":")
    if kind == "care_manager":
        return context.get("names", {}).get(ident, ident)
    if kind == "admin":
        return "an admin"
    if text == "member":
        return context.get("member_name") or "the member"
    return {"vigil": "Vigil", "": "Vigil", "insurer": "the insurer",
            "consent:auto_claims": "the member's standing consent"}.get(text, text)


@pass_context
def _until(context: Context, moment: datetime | None) -> str:
    return "" if moment is None else words.countdown((moment - context["now"]).total_seconds())


@pass_context
def _named(context: Context, text: str | None) -> str:
    """Free text written by Vigil (a stopped step's note) with each `care_manager:<id>` as that person's name."""
    return _ACTOR.sub(lambda m: _who(context, m.group(0)), text or "")


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else utc_text(moment)


TEMPLATES.env.filters.update(
    clock=_clock,
    ago=_ago,
    until=_until,
    who=_who,
    named=_named,
    iso=_iso,
    duration=words.duration,
    type_words=words.type_words,
    status_words=lambda s: words.STATUS_WORDS.get(s, s),
    outcome_words=lambda s: words.OUTCOME_WORDS.get(s, s),
    recipient_words=lambda s: words.RECIPIENT_WORDS.get(s, s),
    claim_type_words=lambda s: words.CLAIM_TYPE_WORDS.get(s, s),
    claim_status_words=lambda s: words.CLAIM_STATUS_WORDS.get(s, s),
    delivery_words=lambda s: words.DELIVERY_WORDS.get(s, s),
)
TEMPLATES.env.globals.update(outcomes=words.OUTCOME_WORDS)
