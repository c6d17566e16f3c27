"""Claim delivery through faults (CONTRACT §4): a real bridge process, a real insurer endpoint over HTTP.

Each claim comes from a member who consented to automatic claims, so the bridge builds it, confirms it and
delivers it by itself. The insurer is idempotent by `Idempotency-Key` and counts the claims it opens:
whatever happens on the way, each key is opened exactly once, and every POST of a claim carries the same
bytes and the same key.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.claims_peers import (
    BridgeProcess,
    Insurer,
    add_care_manager,
    attempts,
    bridge_env,
    claim_row,
    claim_status,
    clean,
    leak,
)
from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import JsonReceiver, sql, wait_for

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("claims_delivery")


@pytest.fixture
def insurer():
    insurer = Insurer()
    yield insurer
    insurer.close()


@pytest.fixture
def bridges(database_url: str, tmp_path: Path):
    clean(database_url)
    started: list[BridgeProcess] = []

    def start(name: str, env: dict[str, str]) -> BridgeProcess:
        process = BridgeProcess(name, env, tmp_path).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    for process in started:
        assert "Traceback" not in process.log_text(), f"{process.name}:\n{process.log_text()[-4000:]}"


def assert_one_claim_in_identical_posts(insurer: Insurer, key: str) -> None:
    posts = insurer.requests_for(key)
    assert posts, f"nothing was POSTed for {key}"
    assert insurer.accepted[key] == 1, [p.answer for p in posts]
    assert {p.body for p in posts} == {insurer.first_bodies[key]}, "a retried POST carried other bytes"


def delivered(database_url: str, claim_id: str) -> bool:
    return claim_status(database_url, claim_id) == "submitted"


def test_failures_then_success_deliver_the_claim_once_with_every_attempt_recorded(database_url, insurer, bridges):
    insurer.fail_first = 3
    _, claim_id = leak(database_url, "d-fail", auto_claims=True)
    bridges("bridge", bridge_env(database_url, webhook_url=insurer.url))

    wait_for(lambda: delivered(database_url, claim_id), 30, what="the claim to be submitted")
    assert [p.answer for p in insurer.requests_for(claim_id)] == ["failed 500"] * 3 + ["accepted"]
    assert all(p.signature_ok for p in insurer.requests_for(claim_id))
    assert_one_claim_in_identical_posts(insurer, claim_id)
    assert [(a, code, outcome) for a, code, _, outcome in attempts(database_url, claim_id)] == [
        (1, 500, "retry"), (2, 500, "retry"), (3, 500, "retry"), (4, 201, "delivered")]
    [(status, tries, error)] = sql(database_url, "SELECT status, attempts, last_error FROM claim_deliveries "
                                   "WHERE claim_id = %s", (claim_id,))
    assert (status, tries, error) == ("delivered", 4, None)
    # What the insurer holds is the confirmed claim as stored: its document, who confirmed it, and the schema.
    body = insurer.first_bodies[claim_id]
    assert body == bytes(sql(database_url, "SELECT body FROM claim_deliveries WHERE claim_id = %s", (claim_id,))[0][0])
    claim = claim_row(database_url, claim_id)
    assert [entry["status"] for entry in claim["status_history"]] == ["prefilled", "confirmed", "submitted"]
    assert claim["confirmed_by"] == "consent:auto_claims"


def test_a_slow_answer_is_retried_and_the_insurer_still_opens_one_claim(database_url, insurer, bridges):
    # The insurer opens the claim, then answers after the bridge stopped waiting (VIGIL_CLAIMS_TIMEOUT_S=1).
    insurer.slow_first, insurer.slow_s = 1, 2.5
    _, claim_id = leak(database_url, "d-slow", auto_claims=True)
    bridges("bridge", bridge_env(database_url, webhook_url=insurer.url))

    wait_for(lambda: delivered(database_url, claim_id), 30, what="the claim to be submitted")
    first, *rest = attempts(database_url, claim_id)
    assert first == (1, None, "no answer within 1 s", "retry")
    assert rest[-1][1:] == (200, None, "delivered")
    assert [p.answer for p in insurer.requests_for(claim_id)][:2] == ["accepted", "replayed"]
    assert_one_claim_in_identical_posts(insurer, claim_id)


def test_dropped_connections_are_retried(database_url, insurer, bridges):
    insurer.drop_first = 2
    _, claim_id = leak(database_url, "d-drop", auto_claims=True)
    bridges("bridge", bridge_env(database_url, webhook_url=insurer.url))

    wait_for(lambda: delivered(database_url, claim_id), 30, what="the claim to be submitted")
    rows = attempts(database_url, claim_id)
    assert [outcome for *_, outcome in rows] == ["retry", "retry", "delivered"]
    assert all(code is None and error.startswith("the connection ended without an answer") for _, code, error, _ in
               rows[:2])
    assert_one_claim_in_identical_posts(insurer, claim_id)


def test_a_wrong_secret_is_refused_by_the_insurer_until_it_is_fixed(database_url, insurer, bridges):
    _, claim_id = leak(database_url, "d-sig", auto_claims=True)
    wrong = bridges("wrong", bridge_env(database_url, webhook_url=insurer.url, secret="not-the-insurers-secret"))
    wait_for(lambda: len(attempts(database_url, claim_id)) >= 3, 30, what="three refused attempts")
    wrong.stop()
    assert insurer.accepted[claim_id] == 0
    assert {p.answer for p in insurer.requests_for(claim_id)} == {"refused 401"}
    assert all(code == 401 and "401" in error and outcome == "retry"
               for _, code, error, outcome in attempts(database_url, claim_id))
    assert claim_status(database_url, claim_id) == "confirmed"

    bridges("fixed", bridge_env(database_url, webhook_url=insurer.url))
    wait_for(lambda: delivered(database_url, claim_id), 30, what="the claim to be submitted")
    assert insurer.accepted[claim_id] == 1
    assert len({p.body for p in insurer.requests_for(claim_id)}) == 1


def test_a_bridge_killed_mid_delivery_is_replaced_and_the_claim_is_opened_once(database_url, insurer, bridges):
    # The POST reaches the insurer and waits there; the bridge dies before any answer. The insurer then opens
    # the claim. The next bridge cannot know that, so it sends the claim again once the dead one's lease has
    # run out (timeout + 30 s): same key, same bytes, and the insurer opens nothing new.
    insurer.hold()
    _, claim_id = leak(database_url, "d-kill", auto_claims=True)
    env = bridge_env(database_url, webhook_url=insurer.url, CLAIMS_TIMEOUT_S=3)
    first = bridges("first", env)
    wait_for(lambda: insurer.waiting == 1, 30, what="the POST to reach the insurer")
    first.kill9()
    insurer.release()
    wait_for(lambda: insurer.accepted[claim_id] == 1, 5, what="the insurer to open the claim")
    assert attempts(database_url, claim_id) == []  # the killed bridge recorded nothing
    assert claim_status(database_url, claim_id) == "confirmed"

    bridges("second", env)
    wait_for(lambda: delivered(database_url, claim_id), 60, what="the second bridge to deliver the claim")
    assert [p.answer for p in insurer.requests_for(claim_id)] == ["accepted", "replayed"]
    assert_one_claim_in_identical_posts(insurer, claim_id)
    # The dead bridge's attempt counts: the lease took attempt 1, the second bridge made attempt 2.
    assert attempts(database_url, claim_id) == [(2, 200, None, "delivered")]


def test_two_bridges_deliver_twenty_claims_each_once_and_never_at_the_same_time(database_url, insurer, bridges):
    insurer.fail_first, insurer.delay_s = 1, 0.2
    claim_ids = [leak(database_url, f"d-two-{n}", auto_claims=True)[1] for n in range(20)]
    env = bridge_env(database_url, webhook_url=insurer.url, CLAIMS_TIMEOUT_S=3)
    bridges("one", env)
    bridges("two", env)

    wait_for(lambda: all(delivered(database_url, c) for c in claim_ids), 60, what="all twenty claims submitted")
    assert insurer.overlaps == []
    for claim_id in claim_ids:
        assert_one_claim_in_identical_posts(insurer, claim_id)
        # Refused once by the insurer, then (a busy insurer may also time out) delivered.
        outcomes = [outcome for *_, outcome in attempts(database_url, claim_id)]
        assert len(outcomes) >= 2 and outcomes == ["retry"] * (len(outcomes) - 1) + ["delivered"]
    assert sql(database_url, "SELECT count(*) FROM claims") == [(20,)]


def test_a_claim_never_delivered_is_given_up_failed_and_its_care_manager_tasked(database_url, insurer, bridges):
    insurer.fail_first = 1_000
    add_care_manager(database_url, "cm-gu")
    inbox = JsonReceiver()
    _, claim_id = leak(database_url, "d-giveup", auto_claims=True, care_manager_id="cm-gu",
                       urls=(inbox.url("member"),))
    bridges("bridge", bridge_env(database_url, webhook_url=insurer.url, CLAIMS_GIVE_UP_S=3))

    wait_for(lambda: claim_status(database_url, claim_id) == "failed", 30, what="the claim to be given up")
    rows = attempts(database_url, claim_id)
    assert len(rows) >= 3
    assert [outcome for *_, outcome in rows] == ["retry"] * (len(rows) - 1) + ["failed"]
    assert [a for a, *_ in rows] == list(range(1, len(rows) + 1))
    [(status, error)] = sql(database_url, "SELECT status, last_error FROM claim_deliveries WHERE claim_id = %s",
                            (claim_id,))
    assert status == "failed" and error.startswith(f"not delivered after {len(rows)} attempts")
    [(kind, care_manager, reason)] = sql(database_url, "SELECT kind, care_manager_id, reason FROM tasks "
                                         "WHERE claim_id = %s", (claim_id,))
    assert (kind, care_manager) == ("call", "cm-gu") and "could not be delivered" in reason
    assert insurer.accepted[claim_id] == 0
    # The member hears it from Vigil; the care manager's task says what to do.
    told = wait_for(lambda: inbox.at("member"), 10, what="the member's notice")
    assert len(told) == 1
    inbox.close()
    # Given up means given up: nothing more is sent.
    sent = len(insurer.requests_for(claim_id))
    time.sleep(2)
    assert len(insurer.requests_for(claim_id)) == sent


def test_claims_confirmed_without_a_webhook_are_held_then_delivered_once_one_is_set(database_url, insurer, bridges):
    _, claim_id = leak(database_url, "d-held", auto_claims=True)
    without = bridges("without", bridge_env(database_url))
    wait_for(lambda: claim_status(database_url, claim_id) == "confirmed", 20, what="the claim to be confirmed")
    assert sql(database_url, "SELECT status FROM claim_deliveries WHERE claim_id = %s", (claim_id,)) == [("held",)]
    without.stop()
    assert "VIGIL_CLAIMS_WEBHOOK_URL is not set" in without.log_text()
    assert insurer.received == []

    bridges("with", bridge_env(database_url, webhook_url=insurer.url))
    wait_for(lambda: delivered(database_url, claim_id), 20, what="the held claim to be submitted")
    assert_one_claim_in_identical_posts(insurer, claim_id)
