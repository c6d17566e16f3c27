"""One delivery attempt of a claim to the insurer's webhook, and what it came to.

Only a 2xx answer delivers. Every other answer is retried until the give-up time, 4xx included: an
insurer that refuses a claim's body or signature today (a schema or key rotation on their side) may
accept the same bytes tomorrow, and the give-up time bounds the waiting. The same goes for 409: it may
mean "already have it" or "conflicting claim", and only the insurer's 2xx says which.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from vigil.claims.signing import sign

_ANSWER_SHOWN = 200  # characters of the insurer's answer kept with a refused attempt


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one POST came to: the insurer's status code, or why there was none, in words."""

    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


async def post_claim(client: httpx.AsyncClient, *, url: str, secret: str, claim_id: str, body: bytes,
                     timeout_s: float) -> AttemptOutcome:
    """POST the exact stored bytes, signed, under the claim's idempotency key; never raises for a failed attempt."""
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": claim_id,
        "X-Vigil-Signature": sign(secret, body),
    }
    started = time.monotonic()
    status_code: int | None = None
    try:
        # httpx's timeout bounds each read and write, not the whole exchange; an insurer trickling
        # bytes would hold the attempt past its lease, so the whole attempt has a deadline too.
        async with asyncio.timeout(timeout_s):
            response = await client.post(url, content=body, headers=headers, timeout=timeout_s)
        status_code = response.status_code
        error = None if response.is_success else _refused(response)
    except (TimeoutError, httpx.TimeoutException):
        error = f"no answer within {timeout_s:g} s"
    except httpx.RemoteProtocolError as e:
        error = f"the connection ended without an answer: {e}"
    except httpx.HTTPError as e:
        error = f"could not reach the insurer: {type(e).__name__}: {e}"
    duration_ms = round((time.monotonic() - started) * 1000)
    return AttemptOutcome(delivered=error is None, status_code=status_code, error=error, duration_ms=duration_ms)


def _refused(response: httpx.Response) -> str:
    text = " ".join(response.text.split())[:_ANSWER_SHOWN]
    reason = f"the insurer answered {response.status_code} {response.reason_phrase}".rstrip()
    return f"{reason}: {text}" if text else reason
