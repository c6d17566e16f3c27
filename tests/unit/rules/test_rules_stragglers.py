"""Stragglers behind the lateness allowance are judged against the stored readings of their window.

The reproduction of issue 10, item 7: a 13-minute bradycardia episode at 35 bpm, worn, sent as
1-minute messages of 24 readings, one message arriving after the three that followed it. When a
batch boundary falls between them the straggler is more than 2 minutes behind the watermark; it used
to be stored but not judged, so the run of 10 low minutes was never seen whole. Here every cut of the
arrival sequence into two batches is judged as the telemetry agent judges it (the batch is stored,
then the stored readings of the stragglers' windows are read back), and must end with the alerts of
in-order delivery: the same triggered_at, cleared at the same moment, one alert per episode. The same
for a message arriving 30 minutes after the rest, for a home rule of each kind (a leak's span, CO's
minutes) and for a fall.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tests.unit.rules.busy_device import IN_ORDER as LATENESS
from tests.unit.rules.busy_device import IN_ORDER_STATE as LATENESS_STATE
from tests.unit.rules.busy_device import straggling
from tests.unit.rules.story import MINUTE_MS, T0_MS, at, judge, rules_named
from vigil.events import AlertChanged, IncidentOpened
from vigil.rules.lateness import Judgement, late_windows
from vigil.rules.state import DeviceState
from vigil.rules.stragglers import REJUDGE_MAX_MS, lookback_ms, windows

Reading = tuple[int, str, float]
Message = list[Reading]


class Device:
    """A device's detection as the telemetry agent runs it: each batch stored first, then judged with the
    stored readings of its stragglers' windows read back (as `streams.stored_readings` does).
    """

    def __init__(self, *names: str) -> None:
        self.names = names
        self.rules = rules_named(*names)
        self.state = DeviceState()
        self.store: set[Reading] = set()
        self.alerts: list[AlertChanged] = []
        self.incidents: list[IncidentOpened] = []
        self.too_late = self.judged_late = 0

    def batch(self, readings: Iterable[Reading]) -> Judgement:
        readings = list(readings)
        self.store.update(readings)
        found = late_windows(self.state, readings, self.rules)
        stored = [r for r in self.store if any(w.from_ms <= r[0] < w.to_ms for w in found)] if found else None
        judgement = judge(readings, *self.names, state=self.state, stored=stored)
        self.alerts += judgement.alerts
        self.incidents += judgement.incidents
        self.too_late += judgement.too_late
        self.judged_late += judgement.judged_late
        return judgement


def held(events: Iterable[AlertChanged]) -> list[tuple]:
    """What the alerts service ends up holding, as `alerts.store` applies events: per alert (type,
    triggered_at, cleared_at or None, severity), withdrawn ones left out. A raise while an alert of the
    type is open lands in that alert; an update moves triggered_at back, never forward; a raise of an
    alert stored already, or a clear of one resolved, changes nothing (a redelivered event).
    """
    rows: dict[str, dict] = {}
    open_row: dict[str, str] = {}
    for event in events:
        if event.change == "raised":
            row_id = open_row.get(event.type, event.alert_id)
            if row_id == event.alert_id and event.alert_id not in rows:
                rows[event.alert_id] = {"type": event.type, "triggered": event.triggered_at_ms,
                                        "severity": event.severity, "cleared": None, "episodes": {event.alert_id}}
                open_row[event.type] = event.alert_id
            elif row_id in rows:
                rows[row_id]["episodes"].add(event.alert_id)
            continue
        row_id = next((r for r, row in rows.items() if event.alert_id in row["episodes"]
                       and row["cleared"] is None), None)
        if row_id is None and event.change == "cleared" and event.alert_id in rows:
            continue
        assert row_id is not None, f"an event for an alert not open: {event}"
        row = rows[row_id]
        if event.change == "updated":
            row["triggered"] = min(row["triggered"], event.triggered_at_ms)
            row["severity"] = event.severity
        else:
            row["cleared"] = event.cleared_at_ms
            row["withdrawn"] = "withdrawn" in event.evidence
            del open_row[row["type"]]
    return sorted((r["type"], r["triggered"], r["cleared"], r["severity"]) for r in rows.values()
                  if not r.get("withdrawn"))


def raises(events: Iterable[AlertChanged]) -> int:
    return sum(1 for e in events if e.change == "raised")


# -- the stories: 1-minute messages ----------------------------------------------------------------------

MINUTES = 45


def _watch(rates: list[float], *, fall_at: int | None = None) -> list[Message]:
    """A watch worn all along: a sample every 15 s of six metrics, one message a minute (24 readings)."""
    messages = []
    for minute, rate in enumerate(rates):
        message = []
        for second in (5, 20, 35, 50):
            ts = at(minute, second)
            message += [(ts, "heart_rate", rate), (ts, "spo2", 97.0), (ts, "steps", 0.0), (ts, "worn", 1.0),
                        (ts, "skin_temp", 33.0), (ts, "battery", 80.0 - minute / 10)]
        if minute == fall_at:
            message.append((at(minute, 20), "fall", 1.0))
        messages.append(message)
    return messages


def _home(metric: str, values: list[float]) -> list[Message]:
    """A home sensor sampling every 10 s, one message a minute."""
    return [[(at(minute, second), metric, value) for second in range(0, 60, 10)]
            for minute, value in enumerate(values)]


def _episode(before: int, during: int, low: float, high: float) -> list[float]:
    return [high] * before + [low] * during + [high] * (MINUTES - before - during)


STORIES: dict[str, tuple[tuple[str, ...], list[Message], range]] = {
    # name: (rules, messages in event order, the messages of the episode)
    "bradycardia": (("bradycardia",), _watch(_episode(5, 13, 35.0, 70.0)), range(5, 18)),
    "water_leak": (("water_leak",), _home("water_leak", _episode(5, 25, 1.0, 0.0)), range(5, 30)),
    "co": (("co",), _home("co_ppm", _episode(5, 13, 170.0, 4.0)), range(5, 18)),
    "fall": (("fall",), _watch([70.0] * MINUTES, fall_at=10), range(10, 11)),
}


def in_order(name: str) -> Device:
    names, messages, _ = STORIES[name]
    device = Device(*names)
    for message in messages:
        device.batch(message)
    return device


EXPECTED = {name: in_order(name) for name in STORIES}


def test_in_order_delivery_raises_each_story_s_alert_once():
    assert held(EXPECTED["bradycardia"].alerts) == [("bradycardia", at(15), at(23), "high")]
    assert held(EXPECTED["water_leak"].alerts) == [("water_leak", at(6), at(35), "high")]
    assert held(EXPECTED["co"].alerts) == [("co", at(15), at(28), "critical")]
    assert held(EXPECTED["fall"].alerts) == [("fall", at(11, 20), None, "critical")]
    assert [i.kind for i in EXPECTED["fall"].incidents] == ["accident"]
    assert [i.kind for i in EXPECTED["water_leak"].incidents] == ["water_damage"]
    assert all(raises(device.alerts) == 1 for device in EXPECTED.values())


def swapped(messages: list[Message], late: int, behind: int) -> list[Message]:
    """Arrival order: message `late` after the `behind` that followed it."""
    order = list(range(len(messages)))
    order.remove(late)
    order.insert(late + behind, late)
    return [messages[i] for i in order]


def check_every_cut(name: str, arrival: list[Message]) -> int:
    """Deliver `arrival` in two batches cut at every place; returns how many cuts left a straggler."""
    names, _, _ = STORIES[name]
    expected = EXPECTED[name]
    with_stragglers = 0
    for cut in range(1, len(arrival)):
        device = Device(*names)
        device.batch(r for message in arrival[:cut] for r in message)
        device.batch(r for message in arrival[cut:] for r in message)

        context = f"{name}, cut after message {cut}"
        assert device.too_late == 0, context
        with_stragglers += device.judged_late > 0
        assert held(device.alerts) == held(expected.alerts), context
        assert raises(device.alerts) == 1, context
        # One incident per episode, with its natural id. Like an alert's first verdict, it is sent once: when
        # the reading that completed it was the straggler, the next reading opened it (a minute later here).
        assert ([(i.incident_id, i.kind) for i in device.incidents]
                == [(i.incident_id, i.kind) for i in expected.incidents]), context
        assert {i.alert_id for i in device.incidents} <= {a.alert_id for a in device.alerts}, context
        # The rules end exactly where in-order delivery leaves them.
        assert device.state.checkpoint == expected.state.checkpoint, context
        assert device.state.buffer == expected.state.buffer, context
    return with_stragglers


@pytest.mark.parametrize("name", STORIES)
def test_a_message_arriving_after_the_three_that_followed_it_is_judged_at_every_cut(name):
    _, messages, episode = STORIES[name]
    cuts_with_stragglers = 0
    for late in range(episode.start - 1, episode.stop + 1):
        cuts_with_stragglers += check_every_cut(name, swapped(messages, late, 3))
    # The cut between the three and the straggler leaves it 3 minutes behind: past the allowance.
    assert cuts_with_stragglers >= len(episode) + 2


@pytest.mark.parametrize("name", STORIES)
def test_the_middle_message_arriving_30_minutes_after_the_rest_is_judged_at_every_cut(name):
    _, messages, episode = STORIES[name]
    middle = episode.start + len(episode) // 2

    assert check_every_cut(name, swapped(messages, middle, 30)) > 0


def test_the_reproduction_used_to_raise_nothing():
    # What the agent did before: the stragglers were counted, not judged (no stored readings given).
    _, messages, _ = STORIES["bradycardia"]
    arrival = swapped(messages, 10, 3)
    state = DeviceState()
    first = judge([r for m in arrival[:13] for r in m], "bradycardia", state=state)
    second = judge([r for m in arrival[13:] for r in m], "bradycardia", state=state)

    assert first.alerts == second.alerts == []
    assert second.too_late == 24


def test_the_straggler_batch_delivered_again_adds_no_alert():
    names, messages, _ = STORIES["bradycardia"]
    arrival = swapped(messages, 10, 30)
    device = Device(*names)
    device.batch(r for m in arrival[:40] for r in m)
    straggler = [r for m in arrival[40:41] for r in m]
    device.batch(straggler)
    sent, judged = list(device.alerts), device.state.to_dict()

    again = device.batch(straggler)  # Kafka redelivers it

    # Judged again, it sends its past episode again under the same natural id: the alerts service
    # finds the alert stored and resolved already, and the state is what it was.
    assert {a.alert_id for a in again.alerts} <= {a.alert_id for a in sent}
    assert held(device.alerts) == held(sent) == held(EXPECTED["bradycardia"].alerts)
    assert device.state.to_dict() == judged


def test_in_order_traffic_reads_nothing_back():
    device = Device("bradycardia")
    _, messages, _ = STORIES["bradycardia"]
    for message in messages:
        assert late_windows(device.state, message, device.rules) == []
        device.batch(message)
    assert device.judged_late == 0


@pytest.mark.parametrize("seed", range(4))
def test_messages_up_to_15_minutes_late_leave_every_alert_of_in_order_delivery(seed):
    # The busy device of the lateness tests (an episode of every rule), its messages up to 15 minutes late:
    # without the stored readings 4 to 7 of its 11 alerts were raised. Now the rules end exactly where
    # in-order delivery leaves them, with one alert per episode, of the same severity. An alert resolved
    # before its stragglers came is not moved: its triggered_at or cleared_at may be later than in order,
    # by no more than the stragglers were late.
    device = Device()
    for batch in straggling(seed, max_delay_s=900):
        device.batch(batch)

    assert device.too_late == 0 and device.judged_late > 2000
    assert device.state.checkpoint == LATENESS_STATE.checkpoint
    got, want = held(device.alerts), held(LATENESS.alerts)
    assert [(kind, severity) for kind, _, _, severity in got] == [(kind, severity) for kind, _, _, severity in want]
    for (_, triggered, cleared, _), (_, want_triggered, want_cleared, _) in zip(got, want, strict=True):
        assert 0 <= triggered - want_triggered <= 900_000
        assert (cleared is None) == (want_cleared is None)
        assert cleared is None or 0 <= cleared - want_cleared <= 900_000


# -- past episodes, open alerts, bounds ------------------------------------------------------------------


def test_a_past_episode_found_while_an_alert_of_its_type_is_open_is_raised_not_cleared():
    # Two bradycardia episodes: minutes 5-17 (its middle message 30 minutes late) and 30-59, open at the end.
    rates = [70.0] * 5 + [35.0] * 13 + [70.0] * 12 + [35.0] * 30
    messages = _watch(rates)
    device = Device("bradycardia")
    device.batch(r for i, m in enumerate(messages) if i != 11 for r in m)
    assert held(device.alerts) == [("bradycardia", at(40), None, "high")]

    judgement = device.batch(messages[11])

    # The first episode is sent as it happened; a clear would close the open alert it lands in.
    assert [(a.change, a.triggered_at_ms) for a in judgement.alerts] == [("raised", at(15))]
    assert judgement.alerts[0].evidence["found_late"].startswith("found late")
    assert device.state.told["bradycardia"][2] == at(40)


TWO_EPISODES = [70.0] * 5 + [135.0] * 12 + [70.0] * 5 + [135.0] * 15 + [70.0] * 8
BETWEEN = range(17, 22)  # the 5 calm minutes between two tachycardia episodes


def _without_the_calm_minutes() -> tuple[list[Message], Device]:
    messages = _watch(TWO_EPISODES)
    expected = Device("tachycardia")
    for message in messages:
        expected.batch(message)
    assert held(expected.alerts) == [("tachycardia", at(15), at(22), "high"), ("tachycardia", at(32), at(42), "high")]
    return messages, expected


def test_a_straggler_that_breaks_an_open_alert_s_run_in_the_past_clears_it_there():
    # Without the calm minutes the watch looks tachycardic from minute 5 on: one alert, open. They arrive
    # while the second episode goes on: the alert is cleared where they show, and the second one raised.
    messages, expected = _without_the_calm_minutes()
    device = Device("tachycardia")
    device.batch(r for i, m in enumerate(messages[:36]) if i not in BETWEEN for r in m)
    assert held(device.alerts) == [("tachycardia", at(15), None, "high")]

    device.batch(r for i in BETWEEN for r in messages[i])
    device.batch(r for m in messages[36:] for r in m)

    assert held(device.alerts) == held(expected.alerts)
    assert device.state.checkpoint == expected.state.checkpoint


def test_a_straggler_that_revises_a_resolved_alert_sends_nothing():
    # The calm minutes arrive after the one alert standing for both episodes was cleared: a resolved alert
    # is never reopened or split, so it stays as sent. The rules' state is in-order delivery's all the same.
    messages, expected = _without_the_calm_minutes()
    device = Device("tachycardia")
    device.batch(r for i, m in enumerate(messages) if i not in BETWEEN for r in m)

    late = device.batch(r for i in BETWEEN for r in messages[i])

    assert late.judged_late == 5 * 24 and late.alerts == []
    assert held(device.alerts) == [("tachycardia", at(15), at(42), "high")]
    assert device.state.checkpoint == expected.state.checkpoint


def test_a_straggler_days_behind_is_judged_on_a_window_of_its_own():
    # An episode two days ago whose middle minute arrives now: raised and cleared as it happened.
    _, messages, _ = STORIES["bradycardia"]
    device = Device("bradycardia")
    device.batch(r for i, m in enumerate(messages) if i != 11 for r in m)
    device.batch([(at(48 * 60) + s * 1000, "heart_rate", 70.0) for s in range(0, 600, 15)])
    live = device.state.to_dict()

    judgement = device.batch(messages[11])

    assert judgement.judged_late == 24 and judgement.too_late == 0
    assert held(judgement.alerts) == held(EXPECTED["bradycardia"].alerts)
    assert device.state.to_dict() == live  # the live state, two days ahead, is left as it was


def test_windows_reach_back_the_rules_longest_lookback_and_are_bounded():
    rules = rules_named()
    lookback = lookback_ms(rules)
    settled = T0_MS + 10 * REJUDGE_MAX_MS

    # CO's hour of minutes, with 4 silent minutes bridged, and the minute before the run.
    assert lookback == (60 + 4 + 1 + 1) * MINUTE_MS
    assert windows(settled, [], rules) == []
    [recent] = windows(settled, [settled - 1000, settled - 600_000], rules)
    assert (recent.from_ms, recent.to_ms, recent.repairs) == (
        (settled - 600_000 - lookback) // MINUTE_MS * MINUTE_MS, settled, True)
    old, recent = windows(settled, [settled - 1000, settled - 3 * REJUDGE_MAX_MS,
                                    settled - 2 * REJUDGE_MAX_MS], rules)
    assert not old.repairs and old.to_ms - old.from_ms <= REJUDGE_MAX_MS + lookback
    assert old.to_ms <= recent.from_ms
