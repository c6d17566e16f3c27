"""`/c/{token}`: the member's one-step confirmation of a pre-filled claim (CONTRACT §3), plain HTML, no script.

The token in the link is the credential, as for the "I'm OK" page: `GET` shows what the claim says in
plain words and one button, "Send my claim"; `POST` confirms it, by the member, and its delivery to the
insurer is queued. A claim confirmed already (by the member, their care manager or a tap on another
device) gets a kind page saying so. Pages for people: not in the API's OpenAPI schema.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import ClaimConfig, Pool
from api.member_page import greeting, page, when
from vigil.claims.lifecycle import StatusRefused
from vigil.storage.claims import confirm_claim, find_claim_by_token

router = APIRouter(prefix="/c", include_in_schema=False)

_KIND_WORDS = {"water_damage": "Water damage", "fire": "Fire", "accident": "An accident"}
_UNKNOWN = (
    "This link is not known",
    "<p>This link does not work. Please check that it was copied in full from the message.</p>"
    "<p>If you need help with your claim, call your care manager.</p>",
)
# What a member reads when the claim is past waiting for them, by its status.
_ALREADY = {
    "confirmed": "You have already sent this claim. We are passing it to your insurer and will send you a "
                 "message when they have it.",
    "submitted": "Your claim has already been sent, and your insurer has it. We will send you a message when "
                 "they answer.",
    "failed": "You have already sent this claim. We could not reach your insurer, so your care manager will "
              "call you about it.",
}
_ANSWERED = "Your claim has already been sent, and your insurer has answered it. We send you a message each " \
            "time it moves on, so there is nothing to do here."


def _summary(claim: dict[str, Any]) -> str:
    """What the claim says, as a short list a member can check."""
    document = claim["document"] or {}
    location = document.get("location") or {}
    where = ", ".join(str(part) for part in (location.get("room"), location.get("address")) if part)
    rows = [
        ("What happened", _KIND_WORDS.get(claim["type"], claim["type"])),
        ("When", when(claim["loss_at"], claim["member_timezone"] or "UTC").removeprefix("at ")),
        ("Where", where[:1].upper() + where[1:]),
        ("What we will tell your insurer", document.get("description") or ""),
        ("Your policy", claim["policy_number"]),
    ]
    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in rows if text)
    return f"<dl>{items}</dl>"


def _already(claim: dict[str, Any]) -> HTMLResponse:
    return page(200, "Already sent", f"<p>{html.escape(_ALREADY.get(claim['status'], _ANSWERED))}</p>")


@router.get("/{token}", response_class=HTMLResponse)
async def confirmation_page(token: str, pool: Pool) -> HTMLResponse:
    """The claim in plain words and one big button, "Send my claim"."""
    async with pool.connection() as conn:
        claim = await find_claim_by_token(conn, token)
    if claim is None:
        return page(404, *_UNKNOWN)
    if claim["status"] != "prefilled":
        return _already(claim)
    body = (
        f"{greeting(claim['member_name'])}"
        "<p>We have filled in an insurance claim for you, so there is no form to fill in. "
        "Please check what it says.</p>"
        f"{_summary(claim)}"
        "<p>If it is right, press the button and we will send it to your insurer.</p>"
        '<form method="post"><button type="submit">Send my claim</button></form>'
        '<p class="small">If something is wrong, do not press the button: call your care manager first.</p>'
    )
    return page(200, "Your claim is ready", body)


@router.post("/{token}", response_class=HTMLResponse)
async def confirm_by_member(token: str, pool: Pool, config: ClaimConfig) -> HTMLResponse:
    """Confirm the claim, by the member; its delivery to the insurer is queued in the same transaction."""
    async with pool.connection() as conn:
        claim = await find_claim_by_token(conn, token)
        if claim is None:
            return page(404, *_UNKNOWN)
        try:
            async with conn.transaction():
                await confirm_claim(conn, claim["id"], by="member", now=datetime.now(UTC), config=config)
        except StatusRefused:
            # Confirmed meanwhile (a second tap, the care manager): say where it stands now.
            return _already(await find_claim_by_token(conn, token) or claim)
    return page(
        200,
        "Thank you",
        "<p>Thank you. We are sending your claim to your insurer now.</p>"
        "<p>We will send you a message when they have it, and each time it moves on.</p>",
    )
