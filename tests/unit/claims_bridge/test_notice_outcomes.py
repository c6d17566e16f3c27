"""What a send makes of a claim notice's row."""

from __future__ import annotations

import pytest

from claims_bridge.notices import MAX_ATTEMPTS, NoticeOutcome, outcome_of
from vigil.delivery import DeliveryResult

DOWN = DeliveryResult(ok=False, reason="A Connection error occurred sending JSON notification to 127.0.0.1.")
NEVER = DeliveryResult(ok=False, permanent=True, reason="Apprise has no service for foo:// URLs")


@pytest.mark.parametrize(("result", "attempts", "expected"), [
    (DeliveryResult(ok=True), 1, NoticeOutcome("sent")),
    (DeliveryResult(ok=True), MAX_ATTEMPTS, NoticeOutcome("sent")),
    (DOWN, 1, NoticeOutcome("pending", DOWN.reason, 7.5)),
    (DOWN, MAX_ATTEMPTS - 1, NoticeOutcome("pending", DOWN.reason, 7.5)),
    (DOWN, MAX_ATTEMPTS, NoticeOutcome("failed", f"gave up after {MAX_ATTEMPTS} attempts: {DOWN.reason}")),
    # A URL that can never work is not tried again.
    (NEVER, 1, NoticeOutcome("failed", NEVER.reason)),
])
def test_a_send_makes_its_notice_sent_pending_or_failed(result: DeliveryResult, attempts: int,
                                                        expected: NoticeOutcome) -> None:
    assert outcome_of(result, attempts, retry_in_s=7.5) == expected
