"""Sending one message to one Apprise URL, with a few quick retries and the reason when it fails.

One Apprise object per URL, so that one recipient's broken channel never hides another's result.
The failure reason comes from the per-call log Apprise 2 attaches to each result: the process-wide
`apprise` logger (what `apprise.LogCapture` taps) is shared by the sender's threads, so lines of
concurrent sends would mix there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import apprise
from apprise.manager_plugins import NotificationManager
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)

TRIES = 3
# Short: a channel that is down for longer is retried later from the outbox (`next_attempt_at`),
# not here, where the wait holds a sender thread.
_WAIT = wait_exponential(multiplier=0.5, max=2)
REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one send came to; `permanent` failures never succeed, so they are not retried."""

    ok: bool
    permanent: bool = False
    reason: str | None = None


def load_plugins() -> int:
    """Load Apprise's plugins now (about 0.2 s, once per process), not on the first alert; how many schemes."""
    return len(NotificationManager().schemas())


def deliver(target: str, title: str, body: str) -> DeliveryResult:
    """Send through `target`, trying up to `TRIES` times; never raises for a failed send."""
    notifier = apprise.Apprise()
    if not notifier.add(target):
        return DeliveryResult(ok=False, permanent=True, reason=_unusable(target))
    retrying = Retrying(stop=stop_after_attempt(TRIES), wait=_WAIT, retry=retry_if_result(lambda r: not r.ok),
                        retry_error_callback=lambda state: state.outcome.result())
    return retrying(_notify_once, notifier, title, body)


def _notify_once(notifier: apprise.Apprise, title: str, body: str) -> DeliveryResult:
    try:
        result = notifier.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    except Exception as e:  # a plugin bug must not stop the sender; the row records it
        log.warning("Apprise raised while sending: %r", e)
        return DeliveryResult(ok=False, reason=f"Apprise raised {type(e).__name__}: {e}"[:REASON_MAX])
    if result:
        return DeliveryResult(ok=True)
    lines = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    reason = " ".join(lines) or "Apprise reported a failed send without saying why"
    return DeliveryResult(ok=False, reason=reason[:REASON_MAX])


def _unusable(target: str) -> str:
    # Never the URL itself in the reason: it may hold a password or an API key.
    scheme = urlsplit(target).scheme.lower()
    if not scheme:
        return "not an Apprise URL: it has no scheme such as json:// or mailto://"
    if scheme not in NotificationManager().schemas():
        return f"Apprise has no service for {scheme}:// URLs"
    return f"the {scheme}:// URL is malformed: Apprise cannot load it"
