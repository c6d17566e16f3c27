"""The alert store plans each raised alert's ladder in the transaction that stores it, and tells
listeners (the console on `vigil_alerts`, the scheduler on `vigil_ladder`) of each change at commit."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest

from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import add_member, alert_event, apply_events, clear_alert, raise_alert, sql

pytestmark = pytest.mark.infra

LADDER = {"high": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 300}],
          "critical": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": 60},
                       {"to": "emergency_contacts", "after_s": 120}]}


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("ladder_store")


@pytest.fixture
def listener(database_url: str):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("LISTEN vigil_alerts")
        conn.execute("LISTEN vigil_ladder")

        def heard() -> list[tuple[str, str]]:
            return [(n.channel, n.payload) for n in conn.notifies(timeout=0.5)]

        yield heard


def test_a_raised_alert_has_its_ladder_and_its_changes_are_announced(database_url, listener):
    add_member(database_url, "s-1")
    raised = raise_alert(database_url, "s-1", escalation=LADDER, severity="high", opens_incident=True)
    alert_id = raised.alert_id
    assert sorted(listener()) == [("vigil_alerts", alert_id), ("vigil_ladder", alert_id)]
    [(raised_at, opens_incident)] = sql(database_url, "SELECT raised_at, opens_incident FROM alerts WHERE id = %s",
                                        (alert_id,))
    assert opens_incident is True
    steps = sql(database_url, "SELECT step, recipient, kind, state, due_at FROM alert_steps WHERE alert_id = %s "
                "ORDER BY step", (alert_id,))
    assert steps == [(1, "member", "ladder", "pending", raised_at),
                     (2, "care_manager", "ladder", "pending", raised_at + timedelta(seconds=300))]

    # The same event again changes nothing and announces nothing.
    assert apply_events(database_url, [raised], LADDER) == ["duplicate"]
    assert listener() == []

    # The severity rises: the care manager's step comes forward, the contacts' step is added.
    rise = alert_event("s-1", "updated", severity="critical", triggered_ms=raised.triggered_at_ms)
    assert apply_events(database_url, [rise], LADDER) == ["updated"]
    assert sorted(listener()) == [("vigil_alerts", alert_id), ("vigil_ladder", alert_id)]
    assert sql(database_url, "SELECT step, recipient, due_at - %s FROM alert_steps WHERE alert_id = %s ORDER BY step",
               (raised_at, alert_id)) == [(1, "member", timedelta(0)), (2, "care_manager", timedelta(seconds=60)),
                                          (3, "emergency_contacts", timedelta(seconds=120))]

    # An update that changes no severity is announced to the console only.
    again = alert_event("s-1", "updated", severity="critical", triggered_ms=raised.triggered_at_ms)
    assert apply_events(database_url, [again], LADDER) == ["updated"]
    assert listener() == [("vigil_alerts", alert_id)]

    # The condition clears: the steps still waiting stop, with the reason.
    now_ms = int(time.time() * 1000)
    cleared = raised.model_copy(update={"change": "cleared", "cleared_at_ms": now_ms, "detected_at_ms": now_ms})
    assert apply_events(database_url, [cleared], LADDER) == ["cleared"]
    assert sorted(listener()) == [("vigil_alerts", alert_id), ("vigil_ladder", alert_id)]
    assert sql(database_url, "SELECT DISTINCT state, note FROM alert_steps WHERE alert_id = %s", (alert_id,)) == [
        ("stopped", "the condition cleared")]


def test_a_batch_that_fails_plans_no_ladder_and_announces_nothing(database_url, listener):
    add_member(database_url, "s-2")
    good = alert_event("s-2", "raised", triggered_ms=int(time.time() * 1000))
    bad = alert_event("s-2", "raised", alert_type="fall", triggered_ms=int(time.time() * 1000))
    bad = bad.model_copy(update={"alert_id": "not-a-uuid"})
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        apply_events(database_url, [good, bad], LADDER)
    assert listener() == []
    assert sql(database_url, "SELECT count(*) FROM alert_steps s JOIN alerts a ON a.id = s.alert_id "
               "WHERE a.member_id = 's-2'") == [(0,)]


def test_the_tip_after_an_incident_waits_an_hour_after_the_resolution(database_url):
    from alerts.ladder_store import run_followups

    add_member(database_url, "s-tip", urls=["json://127.0.0.1:9/tips"])
    raised = raise_alert(database_url, "s-tip", escalation=LADDER, alert_type="water_leak", severity="high",
                         opens_incident=True, evidence={"span_s": 600})
    clear_alert(database_url, raised)
    [(resolved_at,)] = sql(database_url, "SELECT resolved_at FROM alerts WHERE id = %s", (raised.alert_id,))

    with psycopg.connect(database_url, autocommit=True) as conn:
        assert run_followups(conn, resolved_at, tip_delay_s=3600) >= 1
        assert run_followups(conn, resolved_at) == 0  # done once: the alert is marked followed up

    rows = sql(database_url, "SELECT purpose, status, next_attempt_at - %s FROM outreach WHERE alert_id = %s",
               (resolved_at, raised.alert_id))
    assert rows == [("tip", "pending", timedelta(hours=1))]
