"""What a send makes of its outbox row, and how long a failed message waits before its next attempt."""

from __future__ import annotations

import pytest

from alerts.outbox import MAX_ATTEMPTS, RETRY_CAP_S, Outcome, outcome_of, retry_delay_s
from vigil.delivery import DeliveryResult, deliver

DOWN = DeliveryResult(ok=False, reason="A Connection error occurred sending JSON notification to 127.0.0.1.")


@pytest.mark.parametrize(("attempts", "delay_s"), [
    (1, 15), (2, 30), (3, 60), (4, 120), (5, 240), (6, 480), (7, RETRY_CAP_S), (MAX_ATTEMPTS, RETRY_CAP_S),
])
def test_each_failed_attempt_doubles_the_wait_up_to_ten_minutes(attempts: int, delay_s: int) -> None:
    assert retry_delay_s(attempts) == delay_s


def test_all_attempts_fit_in_well_under_an_hour() -> None:
    # A channel down for longer than this is a failure the care manager must see, not a retry.
    assert sum(retry_delay_s(n) for n in range(1, MAX_ATTEMPTS)) < 45 * 60


@pytest.mark.parametrize(("result", "attempts", "expected"), [
    (DeliveryResult(ok=True), 1, Outcome("sent")),
    (DeliveryResult(ok=True), MAX_ATTEMPTS, Outcome("sent")),
    (DOWN, 1, Outcome("pending", DOWN.reason, 15)),
    (DOWN, MAX_ATTEMPTS - 1, Outcome("pending", DOWN.reason, RETRY_CAP_S)),
    (DOWN, MAX_ATTEMPTS, Outcome("failed", f"gave up after {MAX_ATTEMPTS} attempts: {DOWN.reason}")),
    # A URL that can never work is not tried again.
    (DeliveryResult(ok=False, permanent=True, reason="Apprise has no service for foo:// URLs"), 1,
     Outcome("failed", "Apprise has no service for foo:// URLs")),
])
def test_a_send_makes_its_row_sent_pending_or_failed(result: DeliveryResult, attempts: int,
                                                      expected: Outcome) -> None:
    assert outcome_of(result, attempts) == expected


@pytest.mark.parametrize(("target", "reason"), [
    ("foo://somewhere", "Apprise has no service for foo:// URLs"),
    ("no scheme at all", "not an Apprise URL: it has no scheme such as json:// or mailto://"),
    ("json://", "the json:// URL is malformed: Apprise cannot load it"),
    ("mailto://", "the mailto:// URL is malformed: Apprise cannot load it"),
    # The reason never repeats the URL: it may carry a password.
    ("mailto://user:s3cret@", "the mailto:// URL is malformed: Apprise cannot load it"),
])
def test_a_url_apprise_cannot_use_fails_for_good_without_a_try(target: str, reason: str) -> None:
    assert deliver(target, "title", "body") == DeliveryResult(ok=False, permanent=True, reason=reason)
