"""Two real scheduler processes on one database: one leads (runs the ladder and sends), the other waits;
a leader killed with SIGKILL mid-ladder is replaced, and every (alert, step, recipient) arrives once.

Arrivals are counted at a real HTTP receiver (Apprise `json://`), one path per member and recipient.
The kills fall between steps, not inside a send: a send cut off after the receiver answered but
before the row was marked sent is sent again by design (alerts.outbox: a duplicate beats a lost
safety message), and that window is not what this test is about.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.databases import fresh_database
from tests.integration.outreach_peers import (
    JsonReceiver,
    SchedulerProcess,
    add_care_manager,
    add_member,
    alert_event,
    apply_events,
    scheduler_env,
    sql,
    wait_for,
)

pytestmark = pytest.mark.infra

CARE_MANAGER_AFTER_S = 3
CONTACTS_AFTER_S = 6
ESCALATION = {"critical": [{"to": "member", "after_s": 0}, {"to": "care_manager", "after_s": CARE_MANAGER_AFTER_S},
                           {"to": "emergency_contacts", "after_s": CONTACTS_AFTER_S}]}
MEMBERS = [f"fo-{n}" for n in range(8)]
PATHS = ("member", "cm", "contact0", "contact1")
# The standby tries the lock every 2 s; the new leader then starts its jobs and plans the steps.
TAKEOVER_S = 4


@pytest.fixture(scope="module")
def database_url() -> str:
    return fresh_database("failover")


@pytest.fixture
def receiver():
    receiver = JsonReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def processes(database_url: str, tmp_path: Path):
    env = scheduler_env(database_url, tmp_path, escalation=ESCALATION, repeat_s=3600)
    started: list[SchedulerProcess] = []

    def start(name: str) -> SchedulerProcess:
        process = SchedulerProcess(name, env, tmp_path).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
    for process in started:
        assert "Traceback" not in process.log_text(), f"{process.name}:\n{process.log_text()[-4000:]}"


def leading(process: SchedulerProcess) -> bool:
    return process.is_leader() and "outreach sender listening" in process.log_text()


def raise_alerts(database_url: str, receiver: JsonReceiver) -> datetime:
    for member in MEMBERS:
        add_care_manager(database_url, f"cm-{member}", [receiver.url(f"{member}/cm")])
        add_member(database_url, member, urls=[receiver.url(f"{member}/member")], care_manager_id=f"cm-{member}",
                   contacts=[{"name": f"Contact {n}", "phone": "+33600000000", "outreach_url":
                              receiver.url(f"{member}/contact{n}")} for n in (0, 1)])
    triggered_ms = int(time.time() * 1000) - 1000
    events = [alert_event(member, "raised", triggered_ms=triggered_ms) for member in MEMBERS]
    assert apply_events(database_url, events, ESCALATION) == ["raised"] * len(MEMBERS)
    [(raised_at,)] = sql(database_url, "SELECT DISTINCT raised_at FROM alerts")
    return raised_at


def arrivals(receiver: JsonReceiver) -> Counter:
    return Counter(arrival.path for arrival in receiver.arrivals)


def all_arrived(receiver: JsonReceiver, kind: str) -> bool:
    counts = arrivals(receiver)
    return all(counts[f"/{member}/{kind}"] >= 1 for member in MEMBERS)


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def seconds_after(raised_at: datetime, seconds: float) -> datetime:
    return raised_at.fromtimestamp(raised_at.timestamp() + seconds, UTC)


def test_one_leader_sends_and_a_killed_leader_is_replaced_without_doubles_or_gaps(database_url, receiver,
                                                                                   processes):
    first = processes("first")
    wait_for(lambda: leading(first), 30, what="the first scheduler to lead")
    second = processes("second")
    wait_for(lambda: "standing by for the leader lock" in second.log_text(), 30, what="the second to stand by")

    raised_at = raise_alerts(database_url, receiver)
    wait_for(lambda: all_arrived(receiver, "member"), 10, what="every member's message")
    assert not second.is_leader()

    # Just before the care manager's step: the leader dies, and the step falls due while
    # nobody leads. The new leader runs it late, never skips it.
    sleep_until(seconds_after(raised_at, CARE_MANAGER_AFTER_S - 0.1))
    first.kill9()
    killed = datetime.now(UTC)
    # The killed one, restarted as a supervisor would: it competes for the lock with the standby.
    third = processes("third")
    leader = wait_for(lambda: next((p for p in (second, third) if leading(p)), None), TAKEOVER_S,
                      what="a standby to take over")
    takeovers = [(datetime.now(UTC) - killed).total_seconds()]
    standby = third if leader is second else second
    wait_for(lambda: all_arrived(receiver, "cm"), 10, what="every care manager's message")
    wait_for(lambda: "standing by for the leader lock" in standby.log_text(), 30, what="the other to stand by")

    # And again, just before the contacts' step.
    sleep_until(seconds_after(raised_at, CONTACTS_AFTER_S - 0.1))
    leader.kill9()
    killed = datetime.now(UTC)
    wait_for(lambda: leading(standby), TAKEOVER_S, what="the last standby to take over")
    takeovers.append((datetime.now(UTC) - killed).total_seconds())
    wait_for(lambda: all_arrived(receiver, "contact0") and all_arrived(receiver, "contact1"), 10,
             what="every contact's message")
    time.sleep(2)  # room for anything sent twice to show

    counts = arrivals(receiver)
    assert {path: n for path, n in counts.items() if n != 1} == {}, "each (alert, step, recipient) exactly once"
    assert sorted(counts) == sorted(f"/{member}/{path}" for member in MEMBERS for path in PATHS)
    assert sql(database_url, "SELECT status, count(*) FROM outreach GROUP BY status") == [("sent", len(MEMBERS) * 4)]
    assert sql(database_url, "SELECT kind, state, count(*) FROM alert_steps GROUP BY kind, state ORDER BY kind") == [
        ("ladder", "done", len(MEMBERS) * 3), ("repeat", "pending", len(MEMBERS))]
    # Only the leader of the moment ever ran a step.
    assert "step 1 of alert" not in leader.log_text() + standby.log_text()
    assert "step 2 of alert" not in standby.log_text() and "step 3 of alert" not in leader.log_text()
    late = {kind: [(a.at - seconds_after(raised_at, after_s)).total_seconds() for a in receiver.arrivals
                   if a.path.endswith(kind)]
            for kind, after_s in (("/cm", CARE_MANAGER_AFTER_S), ("/contact0", CONTACTS_AFTER_S),
                                  ("/contact1", CONTACTS_AFTER_S))}
    print(f"\nfailover: a new leader ran the jobs {takeovers[0]:.2f} s and {takeovers[1]:.2f} s after the kills; "
          + "; ".join(f"{kind[1:]} steps due during a takeover arrived {min(v):.2f}-{max(v):.2f} s after due"
                      for kind, v in late.items()))


def test_a_leader_whose_lock_session_ends_exits_and_a_standby_takes_over(database_url, tmp_path, processes):
    leader = processes("leader")
    wait_for(lambda: leading(leader), 30, what="the leader to lead")
    standby = processes("standby")
    wait_for(lambda: "standing by for the leader lock" in standby.log_text(), 30, what="the standby to stand by")
    # A standby that reaches the database stamps the file the container healthcheck reads.
    alive = tmp_path / "scheduler.alive"
    alive.unlink(missing_ok=True)
    wait_for(alive.exists, 5, what="the standby to stamp its liveness")

    # The database ends the leader's lock session (a failover of PostgreSQL, an operator, a network cut).
    assert sql(database_url, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE datname = current_database() AND application_name = 'vigil-scheduler-leader' "
               "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)) t") == [(1,)]
    assert leader.proc is not None and leader.proc.wait(10) == 1
    assert "lost the leader lock's session" in leader.log_text()
    wait_for(lambda: leading(standby), TAKEOVER_S, what="the standby to take over")
