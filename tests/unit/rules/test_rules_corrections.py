"""Correcting an open alert's `triggered_at` when readings that arrived late show its condition was met earlier.

The evaluation's `water_leak_out_of_order` scenario: a probe wet from +3:00 to +6:00, each 2 minutes of
messages delivered newest first (nothing later than the lateness allowance). The message starting at
+5:30 arrives first and completes a 60-second wet span on its own, so the alert is raised with
`triggered_at` +5:30; the stragglers then show the condition was met at +4:00. The alert keeps its id
(derived from the first verdict) and an `updated` event carries the earlier moment, which the alerts
service keeps (it only ever moves `triggered_at` back): it ends where in-order delivery puts it.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from simulators.labelled import LIBRARY
from simulators.labelled.model import InOrder, ReversedBlocks
from tests.unit.rules.story import at, judge
from tests.unit.simulators.labelled_messages import scenario_messages
from vigil.events import AlertChanged
from vigil.rules.announce import CORRECTED
from vigil.rules.lateness import DEFAULT_ALLOWED_LATENESS_MS
from vigil.rules.state import DeviceState

Reading = tuple[int, str, float]


def newest_first(readings: Iterable[Reading], *, start_ms: int, message_s: int, block_s: int) -> list[list[Reading]]:
    """Readings grouped in messages of `message_s` from `start_ms`, each `block_s` of messages delivered newest
    first (the labelled scenarios' `ReversedBlocks`): one list of readings per message, in delivery order.
    """
    grouped: dict[int, list[Reading]] = {}
    for reading in sorted(readings):
        grouped.setdefault((reading[0] - start_ms) // (message_s * 1000), []).append(reading)
    messages = [grouped[key] for key in sorted(grouped)]
    order = ReversedBlocks(block_s).order([(message[0][0] - start_ms) // 1000 for message in messages])
    return [messages[i] for i in order]


def worst_lateness_ms(messages: list[list[Reading]]) -> int:
    """How far behind the newest reading already delivered the latest-arriving reading was."""
    newest, worst = 0, 0
    for message in messages:
        worst = max(worst, newest - min(ts for ts, _, _ in message))
        newest = max(newest, max(ts for ts, _, _ in message))
    return worst


def deliver(messages: Iterable[list[Reading]], *names: str) -> tuple[list[AlertChanged], DeviceState]:
    """Judge one message per call; the alert events in the order sent, and the final state."""
    state, alerts = DeviceState(), []
    for message in messages:
        alerts += judge(message, *names, state=state).alerts
    return alerts, state


def stored(events: Iterable[AlertChanged]) -> dict[str, dict]:
    """What the alerts service ends up holding per alert id, as `alerts.store` applies events: a raise sets
    `triggered_at`, an update of the open alert moves it back (never forward), a clear closes the alert.
    """
    alerts: dict[str, dict] = {}
    for event in events:
        if event.change == "raised":
            alerts.setdefault(event.alert_id, {"type": event.type, "triggered_at": event.triggered_at_ms,
                                               "severity": event.severity, "open": True})
            continue
        alert = alerts[event.alert_id]
        assert alert["open"], f"an event for an alert already closed: {event}"
        if event.change == "updated":
            alert["triggered_at"] = min(alert["triggered_at"], event.triggered_at_ms)
            alert["severity"] = event.severity
        else:
            alert["open"] = False
            alert["withdrawn"] = "withdrawn" in event.evidence
    return alerts


def triggered_per_type(events: Iterable[AlertChanged]) -> dict[str, list[tuple[int, str]]]:
    """(triggered_at, severity) of every alert the service holds, per type, leaving out withdrawn ones."""
    held: dict[str, list[tuple[int, str]]] = {}
    for alert in stored(events).values():
        if not alert.get("withdrawn"):
            held.setdefault(alert["type"], []).append((alert["triggered_at"], alert["severity"]))
    return {kind: sorted(values) for kind, values in held.items()}


def in_order(messages: list[list[Reading]]) -> list[list[Reading]]:
    return sorted(messages, key=lambda message: message[0][0])


# -- a span rule: the water_leak_out_of_order scenario --------------------------------------------------


def _wet_probe() -> list[Reading]:
    """A leak probe sampled every 5 s for 12 minutes, wet from +3:00 to +6:00."""
    return [(at(0, s), "water_leak", 1.0 if 180 <= s < 360 else 0.0) for s in range(0, 720, 5)]


WET_PROBE = newest_first(_wet_probe(), start_ms=at(0), message_s=30, block_s=120)


def test_the_leak_scenario_is_out_of_order_within_the_allowance():
    assert in_order(WET_PROBE) != WET_PROBE
    assert 0 < worst_lateness_ms(WET_PROBE) <= 115_000 < DEFAULT_ALLOWED_LATENESS_MS


def test_a_leak_first_raised_on_its_newest_readings_ends_with_the_in_order_triggered_at():
    expected, _ = deliver(in_order(WET_PROBE), "water_leak")
    alerts, state = deliver(WET_PROBE, "water_leak")

    assert [(a.change, a.triggered_at_ms, a.cleared_at_ms) for a in expected] == [
        ("raised", at(4), None), ("cleared", at(4), at(11))]
    # The bet: the message starting at +5:30 arrives first, and is 60 s of wet readings after those of +3:xx.
    assert (alerts[0].change, alerts[0].triggered_at_ms) == ("raised", at(5, 30))
    # One alert, its id never re-derived: the stragglers move its triggered_at back, update by update.
    assert {a.alert_id for a in alerts} == {alerts[0].alert_id}
    updates = [a.triggered_at_ms for a in alerts if a.change == "updated"]
    assert updates == sorted(updates, reverse=True) and updates[-1] == at(4)
    assert alerts[-1].change == "cleared" and alerts[-1].triggered_at_ms == at(4)
    assert stored(alerts)[alerts[0].alert_id]["triggered_at"] == at(4) == expected[0].triggered_at_ms
    assert state.checkpoint == deliver(in_order(WET_PROBE), "water_leak")[1].checkpoint


def test_the_correcting_update_carries_the_evidence_of_the_condition_met_earlier():
    alerts, _ = deliver(WET_PROBE, "water_leak")

    final = next(a for a in alerts if a.change == "updated" and a.triggered_at_ms == at(4))
    assert final.evidence["first_at"] == "2026-11-22T02:03:00Z"
    assert final.alert_id == alerts[0].alert_id


def test_a_straggler_that_moves_the_condition_later_leaves_triggered_at_where_it_was():
    # Wet every 10 s from 0 to 120 s, the reading at 30 s delayed: the alert is raised at 60 s on the
    # others; then the 30 s reading arrives dry, so the replay's episode starts at 40 s and meets the
    # condition at 100 s. The alert stands for that episode, but its triggered_at is not moved forward.
    wet = [(at(0, s), "water_leak", 1.0) for s in range(0, 130, 10) if s != 30]
    state = DeviceState()

    raised = judge(wet, "water_leak", state=state).alerts
    moved = judge([(at(0, 30), "water_leak", 0.0)], "water_leak", state=state).alerts

    assert [(a.change, a.triggered_at_ms) for a in raised] == [("raised", at(0, 60))]
    assert [(a.change, a.alert_id, a.triggered_at_ms) for a in moved] == [
        ("updated", raised[0].alert_id, at(0, 60))]
    assert state.told["water_leak"][2] == at(0, 60)


# -- a minute rule: CO with a sensor reporting every 55 s ---------------------------------------------


def _co_alarm() -> list[Reading]:
    """A CO alarm reporting every 55 s from 0:30: 450 ppm for 10 minutes, then 5 ppm for 20."""
    return [(at(0, 30 + s), "co_ppm", 450.0 if s < 600 else 5.0) for s in range(0, 1800, 55)]


# Messages of one reading, three to a block delivered newest first: 5:05, 4:10, then 3:15, 110 s late.
CO_ALARM = newest_first(_co_alarm(), start_ms=at(0, 30), message_s=55, block_s=165)


def test_co_first_raised_without_its_completing_minute_ends_with_the_in_order_triggered_at():
    expected, expected_state = deliver(in_order(CO_ALARM), "co")
    alerts, state = deliver(CO_ALARM, "co")

    assert 0 < worst_lateness_ms(CO_ALARM) <= 110_000
    # In order: 400 ppm or more in minutes 0 to 3 (UL 2034's 4 minutes): met at 4:00.
    assert [(a.change, a.triggered_at_ms, a.cleared_at_ms) for a in expected if a.change != "updated"] == [
        ("raised", at(4), None), ("cleared", at(4), at(20))]
    # Minute 4 arrives before minute 3, which the run bridges as silent: raised at 5:00 ...
    assert (alerts[0].change, alerts[0].triggered_at_ms) == ("raised", at(5))
    # ... and corrected to 4:00 by the update minute 3's reading brings, on the same alert.
    correction = alerts[1]
    assert (correction.change, correction.alert_id, correction.triggered_at_ms) == (
        "updated", alerts[0].alert_id, at(4))
    assert correction.evidence["minutes"][0]["minute"] == "2026-11-22T02:00:00Z"
    assert {a.alert_id for a in alerts} == {alerts[0].alert_id}
    assert triggered_per_type(alerts) == triggered_per_type(expected) == {"co": [(at(4), "critical")]}
    assert state.checkpoint == expected_state.checkpoint


# -- every other rule kind: a fall, and arcing counted in a window -------------------------------------


def test_a_fall_judged_on_a_later_fall_first_is_corrected_to_the_earlier_one():
    # Two falls 45 s apart, no getting up. In order the first is judged at 1:05; delivered newest first,
    # the second is judged at 1:50 before the first arrives (110 s late).
    fell, fell_again = [(at(0, 5), "fall", 1.0)], [(at(0, 50), "fall", 1.0)]
    later = [(at(1, 55), "battery", 80.0)]
    expected, _ = deliver([fell, fell_again, later], "fall")
    alerts, _ = deliver([fell_again, later, fell], "fall")

    assert [(a.change, a.triggered_at_ms) for a in expected] == [("raised", at(1, 5))]
    assert [(a.change, a.alert_id, a.triggered_at_ms) for a in alerts] == [
        ("raised", alerts[0].alert_id, at(1, 50)), ("updated", alerts[0].alert_id, at(1, 5))]
    assert triggered_per_type(alerts) == triggered_per_type(expected)


def test_arcing_counted_without_a_straggler_is_corrected_to_the_moment_the_third_event_came():
    arcs = [[(at(0, s), "arc_events", 1.0)] for s in (0, 30, 60, 90)]
    expected, _ = deliver(arcs, "electrical_arcing")
    alerts, _ = deliver([arcs[0], arcs[3], arcs[2], arcs[1]], "electrical_arcing")

    assert [(a.change, a.triggered_at_ms) for a in expected] == [("raised", at(1))]
    assert [(a.change, a.triggered_at_ms) for a in alerts] == [("raised", at(1, 30)), ("updated", at(1))]
    assert len({a.alert_id for a in alerts}) == 1
    assert triggered_per_type(alerts) == triggered_per_type(expected)


def test_an_episode_the_replay_switches_to_silently_still_corrects_triggered_at():
    # The raise of the episode met earlier was already sent once (as a first verdict, since withdrawn
    # and raised again under a new id): when the replay comes back to it, no raise is news, yet the open
    # alert must still say when its condition was met.
    state = DeviceState()
    state.told = {"water_leak": ["sent-id", "high", at(0, 90), "another-episode"]}
    wet = [(at(0, s), "water_leak", 1.0) for s in range(0, 100, 10)]
    announced = judge(wet[:7], "water_leak", state=DeviceState()).alerts[0]
    state.announced = {f"{announced.alert_id}|raised|{at(0, 60)}": at(0, 60)}

    alerts = judge(wet, "water_leak", state=state).alerts

    assert [(a.change, a.alert_id, a.triggered_at_ms, a.evidence.get("restated")) for a in alerts] == [
        ("updated", "sent-id", at(0, 60), CORRECTED)]
    assert state.told["water_leak"] == ["sent-id", "high", at(0, 60), announced.alert_id]


# -- the labelled scenarios delivered out of order ------------------------------------------------------


OUT_OF_ORDER = [s for s in LIBRARY if not s.live and not isinstance(s.delivery, InOrder)]


def test_the_library_has_out_of_order_scenarios_of_several_rules():
    assert {"water_leak_out_of_order", "tachycardia_out_of_order"} <= {s.name for s in OUT_OF_ORDER}


@pytest.mark.parametrize("scenario", OUT_OF_ORDER, ids=lambda s: s.name)
def test_a_scenario_delivered_out_of_order_is_stored_with_the_triggered_at_of_in_order_delivery(scenario):
    messages, order = scenario_messages(scenario)

    expected, _ = deliver(messages)
    alerts, _ = deliver([messages[i] for i in order])

    assert triggered_per_type(alerts) == triggered_per_type(expected)
