"""Ingest's liveness: heartbeats earned by probes that came back, and an exit when a thread dies."""

from __future__ import annotations

import json
import threading

import pytest

from ingest.probe import PROBE_RETRY_MS, LoopProbe
from ingest.service import stop_when_a_thread_dies

T0 = 1_795_341_600_000


def test_a_probe_that_comes_back_gives_its_round_trip():
    probe = LoopProbe()
    payload = probe.next(T0)

    assert probe.returned(payload, T0 + 12) == 12
    assert probe.last_returned_ms == T0 + 12


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(json.dumps({"token": "someone else", "n": 1, "sent_at_ms": T0}).encode(), id="another token"),
        pytest.param(b"not json", id="not JSON"),
        pytest.param(b"[]", id="not an object"),
        pytest.param(json.dumps({"n": 1, "sent_at_ms": T0}).encode(), id="no token"),
    ],
)
def test_anything_but_our_own_probe_earns_nothing(payload):
    probe = LoopProbe()
    probe.next(T0)

    assert probe.returned(payload, T0 + 5) is None
    assert probe.last_returned_ms is None


def test_each_process_has_its_own_token():
    earlier, now = LoopProbe(), LoopProbe()

    assert now.returned(earlier.next(T0), T0 + 1) is None


def test_one_probe_at_a_time_and_another_when_it_is_overdue():
    probe = LoopProbe()
    assert probe.due(T0)
    probe.next(T0)

    assert not probe.due(T0 + 5_000)  # on its way: a stuck loop does not pile probes up
    assert probe.due(T0 + PROBE_RETRY_MS)  # lost, or stuck: send another
    second = probe.next(T0 + PROBE_RETRY_MS)
    assert not probe.due(T0 + PROBE_RETRY_MS + 5_000)  # the next retry is counted from this one
    assert probe.returned(second, T0 + PROBE_RETRY_MS + 3) == 3
    assert probe.due(T0 + PROBE_RETRY_MS + 4)


def test_a_late_probe_still_proves_the_loop_moves_now():
    probe = LoopProbe()
    first = probe.next(T0)
    probe.next(T0 + PROBE_RETRY_MS)

    assert probe.returned(first, T0 + 60_000) == 60_000
    assert probe.due(T0 + 60_001)


def test_silence_is_counted_from_the_start_until_a_probe_returns():
    probe = LoopProbe()
    assert probe.silent_for_ms(T0 + 7_000, started_ms=T0) == 7_000
    probe.returned(probe.next(T0 + 7_000), T0 + 7_001)

    assert probe.silent_for_ms(T0 + 9_001, started_ms=T0) == 2_000


@pytest.fixture
def restore_excepthook():
    original = threading.excepthook
    yield
    threading.excepthook = original


@pytest.mark.usefixtures("restore_excepthook")
@pytest.mark.parametrize("error", [RuntimeError("boom"), RecursionError(), SystemExit(3)])
def test_a_thread_that_dies_stops_ingest(error, caplog):
    stop = threading.Event()
    died = stop_when_a_thread_dies(stop)

    def network_loop():
        raise error

    thread = threading.Thread(target=network_loop, name="paho-mqtt-client-test")
    thread.start()
    thread.join(5)

    assert stop.is_set() and died.is_set()
    assert "paho-mqtt-client-test thread died" in caplog.text


@pytest.mark.usefixtures("restore_excepthook")
def test_threads_that_end_normally_do_not_stop_ingest():
    stop = threading.Event()
    died = stop_when_a_thread_dies(stop)

    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join(5)

    assert not stop.is_set() and not died.is_set()
