"""The outbox and its sender against a real PostgreSQL, a real HTTP receiver (Apprise `json://`) and a
real SMTP server (aiosmtpd, Apprise `mailto://`): what arrives, retries with backoff, failures for good,
a send interrupted by a crash, grouped rows, and claims that never overlap."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import REGISTRY

from alerts.ladder_store import OutreachConfig, pending_steps, run_step
from alerts.outbox import MAX_ATTEMPTS, RETRY_FIRST_S, claim, expire_leases
from scheduler.sender import Sender
from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import (
    JsonReceiver,
    SmtpInbox,
    add_care_manager,
    add_member,
    raise_alert,
    sql,
    wait_for,
)

pytestmark = pytest.mark.infra

CONFIG = OutreachConfig(public_url="https://vigil.example.org", group_interval_s=120, repeat_s=14_400)


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("outreach_delivery")


@pytest.fixture(scope="module")
def receiver():
    receiver = JsonReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def smtp():
    inbox = SmtpInbox()
    yield inbox
    inbox.close()


@pytest.fixture
def sender(database_url: str):
    sender = Sender(database_url)
    sender.start()
    yield sender
    sender.stop()


def run_due_steps(database_url: str, alert_id: str) -> list[str]:
    """Run the alert's steps that are due, as the scheduler's step jobs would."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        return [run_step(conn, a, step, now, CONFIG) for a, step, due in pending_steps(conn)
                if a == alert_id and due <= now]


def outreach(database_url: str, alert_id: str) -> list[dict]:
    rows = sql(database_url, "SELECT id, step, to_role, channel, status, attempts, reason, next_attempt_at, "
               "updated_at, sent_at, grouped_into FROM outreach WHERE alert_id = %s ORDER BY id", (alert_id,))
    keys = ("id", "step", "to_role", "channel", "status", "attempts", "reason", "next_attempt_at", "updated_at",
            "sent_at", "grouped_into")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def settled(database_url: str, alert_id: str, statuses: tuple[str, ...] = ("sent", "failed")):
    """The alert's rows once none is pending or being sent."""
    rows = outreach(database_url, alert_id)
    return rows if rows and all(r["status"] in statuses for r in rows) else None


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_step_reaches_every_channel_of_its_recipient_by_json_and_by_mail(database_url, receiver, smtp, sender):
    add_member(database_url, "d-1", urls=[receiver.url("d-1/member"), smtp.url("anna@example.org")])
    sent_json = counter("vigil_outreach_sent_total", channel="json")
    sent_mail = counter("vigil_outreach_sent_total", channel="mailto")

    alert = raise_alert(database_url, "d-1")
    assert run_due_steps(database_url, alert.alert_id) == ["sent"]

    rows = wait_for(lambda: settled(database_url, alert.alert_id), what="both messages sent")
    assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [("json", "sent", 1), ("mailto", "sent", 1)]
    [posted] = receiver.at("d-1/member")
    [mail] = wait_for(lambda: smtp.to("anna@example.org"), what="the mail")
    assert posted.title.startswith("Vigil: are you OK?")
    assert mail["Subject"] == posted.title
    # One message to the member, the same on each channel, with one reply link for this alert.
    [link] = re.findall(r"https://vigil\.example\.org/r/[A-Za-z0-9_-]+", posted.message)
    assert link in mail.get_content()
    assert sql(database_url, "SELECT count(*) FROM reply_tokens WHERE alert_id = %s", (alert.alert_id,)) == [(1,)]
    assert counter("vigil_outreach_sent_total", channel="json") == sent_json + 1
    assert counter("vigil_outreach_sent_total", channel="mailto") == sent_mail + 1


def test_a_failed_send_is_retried_with_backoff_across_attempts_and_recorded(database_url, receiver, sender):
    add_member(database_url, "d-2", urls=[receiver.url("d-2/member")])
    receiver.fail("d-2/member", 3)  # every try of the first attempt
    failed = counter("vigil_outreach_failed_total", channel="json", final="false")

    alert = raise_alert(database_url, "d-2")
    run_due_steps(database_url, alert.alert_id)

    [row] = wait_for(lambda: [r for r in outreach(database_url, alert.alert_id) if r["attempts"] == 1
                              and r["status"] == "pending"], what="the first attempt recorded as failed")
    assert receiver.refused.count("/d-2/member") == 3  # three tries in process before giving the row back
    assert "500" in row["reason"] or "error" in row["reason"].lower(), row["reason"]
    wait_s = (row["next_attempt_at"] - row["updated_at"]).total_seconds()
    assert RETRY_FIRST_S - 1 < wait_s < RETRY_FIRST_S + 1
    assert receiver.at("d-2/member") == []
    assert counter("vigil_outreach_failed_total", channel="json", final="false") == failed + 1

    # The next attempt, brought forward rather than waited for: it succeeds and is recorded.
    sql(database_url, "UPDATE outreach SET next_attempt_at = now() WHERE id = %s", (row["id"],))
    [done] = wait_for(lambda: settled(database_url, alert.alert_id), what="the second attempt")
    assert (done["status"], done["attempts"], done["reason"]) == ("sent", 2, None)
    assert len(receiver.at("d-2/member")) == 1


def test_a_send_that_keeps_failing_is_given_up_after_eight_attempts(database_url, receiver, sender):
    add_member(database_url, "d-3", urls=[receiver.url("d-3/member")])
    receiver.fail("d-3/member", 1000)
    alert = raise_alert(database_url, "d-3")
    run_due_steps(database_url, alert.alert_id)
    [row] = wait_for(lambda: [r for r in outreach(database_url, alert.alert_id) if r["attempts"] == 1
                              and r["status"] == "pending"], what="the first failed attempt")

    sql(database_url, "UPDATE outreach SET attempts = %s, next_attempt_at = now() WHERE id = %s",
        (MAX_ATTEMPTS - 1, row["id"]))
    [gave_up] = wait_for(lambda: settled(database_url, alert.alert_id), what="the last attempt")
    assert (gave_up["status"], gave_up["attempts"]) == ("failed", MAX_ATTEMPTS)
    assert gave_up["reason"].startswith(f"gave up after {MAX_ATTEMPTS} attempts: ")
    assert receiver.at("d-3/member") == []


def test_a_url_apprise_cannot_use_fails_at_once_with_the_reason(database_url, sender):
    add_member(database_url, "d-4", urls=["foo://somewhere/x", "json://"])
    alert = raise_alert(database_url, "d-4")
    run_due_steps(database_url, alert.alert_id)
    rows = wait_for(lambda: settled(database_url, alert.alert_id), what="both rows failed")
    assert [(r["channel"], r["status"], r["attempts"], r["reason"]) for r in rows] == [
        ("foo", "failed", 1, "Apprise has no service for foo:// URLs"),
        ("json", "failed", 1, "the json:// URL is malformed: Apprise cannot load it"),
    ]


def _queued_row(database_url: str, alert_id: str, target: str, *, status: str, lease_s: float = 0,
                attempts: int = 0, grouped_into: int | None = None) -> int:
    return sql(database_url, """
        INSERT INTO outreach (alert_id, step, to_role, recipient_key, recipient_name, channel, target, target_digest,
                              title, body, status, attempts, next_attempt_at, lease_until, grouped_into)
        VALUES (%s, 9, 'member', 'member:x', 'Anna', 'json', %s, md5(%s || random()::text), 'Vigil: test', 'body',
                %s, %s, now(), now() + %s * interval '1 second', %s)
        RETURNING id""", (alert_id, target, target, status, attempts, lease_s, grouped_into))[0][0]


def _state(database_url: str, row_id: int) -> tuple[str, int]:
    [state] = sql(database_url, "SELECT status, attempts FROM outreach WHERE id = %s", (row_id,))
    return state


def test_a_message_left_sending_by_a_crashed_sender_is_sent_again(database_url, receiver):
    add_member(database_url, "d-5")
    alert = raise_alert(database_url, "d-5")
    lapsed = _queued_row(database_url, alert.alert_id, receiver.url("d-5/lapsed"), status="sending", lease_s=-1,
                         attempts=1)
    leased = _queued_row(database_url, alert.alert_id, receiver.url("d-5/leased"), status="sending", lease_s=600,
                         attempts=1)
    sender = Sender(database_url)
    sender.start()
    try:
        # The receiver sees the POST before the sender records it, so wait for the row, not the arrival.
        wait_for(lambda: _state(database_url, lapsed) == ("sent", 2), what="the lapsed row sent again")
        assert len(receiver.at("d-5/lapsed")) == 1
        # A live lease belongs to a sender still at work: left alone...
        assert receiver.at("d-5/leased") == []
        # ...until a new leader takes over, which knows the old one's session (and sends) ended.
        with psycopg.connect(database_url, autocommit=True) as conn:
            assert expire_leases(conn) == 1
        wait_for(lambda: _state(database_url, leased) == ("sent", 2), what="the leased row sent after the takeover")
        assert len(receiver.at("d-5/leased")) == 1
    finally:
        sender.stop()


def test_grouped_rows_are_never_sent_themselves_and_follow_their_carrier(database_url, receiver, sender):
    add_member(database_url, "d-6")
    carrier_alert = raise_alert(database_url, "d-6")
    rider_alert = raise_alert(database_url, "d-6", alert_type="low_spo2", severity="high")
    carrier = _queued_row(database_url, carrier_alert.alert_id, receiver.url("d-6/member"), status="pending")
    rider = _queued_row(database_url, rider_alert.alert_id, receiver.url("d-6/member"), status="pending",
                        grouped_into=carrier)
    sql(database_url, "SELECT pg_notify('vigil_outreach', 'test')")
    wait_for(lambda: sql(database_url, "SELECT status FROM outreach WHERE id = %s", (rider,)) == [("sent",)],
             what="the grouped row to follow its carrier")
    assert len(receiver.at("d-6/member")) == 1
    [(carrier_sent,)] = sql(database_url, "SELECT sent_at FROM outreach WHERE id = %s", (carrier,))
    assert sql(database_url, "SELECT sent_at FROM outreach WHERE id = %s", (rider,)) == [(carrier_sent,)]


def test_two_senders_claiming_at_once_never_take_the_same_row(database_url, receiver):
    add_member(database_url, "d-7")
    alert = raise_alert(database_url, "d-7")
    ids = {_queued_row(database_url, alert.alert_id, receiver.url(f"d-7/{n}"), status="pending") for n in range(40)}
    claims: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def take(slot: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            start.wait()
            while batch := claim(conn, 3):
                claims[slot].extend(m.id for m in batch)

    threads = [threading.Thread(target=take, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert set(claims[0]).isdisjoint(claims[1])
    assert ids <= set(claims[0]) | set(claims[1])
    assert claims[0] and claims[1]  # both took a share


def test_the_care_manager_gets_mail_with_the_console_link(database_url, smtp, sender):
    add_care_manager(database_url, "cm-d8", [smtp.url("claire.d8@example.org")])
    add_member(database_url, "d-8", care_manager_id="cm-d8")
    alert = raise_alert(database_url, "d-8", severity="medium")  # member and care manager at once
    assert run_due_steps(database_url, alert.alert_id) == ["sent", "sent"]
    [mail] = wait_for(lambda: smtp.to("claire.d8@example.org"), what="the care manager's mail")
    body = mail.get_content()
    assert f"https://vigil.example.org/alerts/{alert.alert_id}" in body
    assert "Anna Berger" in mail["Subject"] and "148 bpm" in body
    # The member has no channel: recorded as skipped with the reason, not silently dropped.
    assert sql(database_url, "SELECT to_role, channel, status, reason FROM outreach WHERE alert_id = %s "
               "AND to_role = 'member'", (alert.alert_id,)) == [
        ("member", "none", "skipped", "the member has no outreach URL")]
    due = datetime.now(UTC) + timedelta(hours=3)
    [(repeat_due,)] = sql(database_url, "SELECT due_at FROM alert_steps WHERE alert_id = %s AND kind = 'repeat'",
                          (alert.alert_id,))
    assert repeat_due > due  # re-notified after VIGIL_REPEAT_S (4 h), not on every update
