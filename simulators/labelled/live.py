"""Live scenarios: `device_offline` is about wall-clock silence, so these play in real time.

A home hub registered with `report_interval_s` 5 goes offline after 15 s without a message.
"""

from __future__ import annotations

from simulators.labelled.model import Expected, Scenario

REPORT_INTERVAL_S = 5
_SILENCE_S = 3 * REPORT_INTERVAL_S


def scenarios() -> list[Scenario]:
    heartbeat = tuple(range(0, 31, REPORT_INTERVAL_S))
    # Gaps of 5 to 12 s: late now and then, never 15 s late.
    jittered = (0, 5, 12, 24, 30, 38, 50, 55, 63, 75, 80, 90)
    return [
        Scenario(name="offline_goes_silent", kind="home", role="positive",
                 summary="a hub reporting every 5 s stops after 30 s: offline once 15 s pass without a message",
                 duration_s=heartbeat[-1] + 1, sample_s=REPORT_INTERVAL_S, message_s=1, sample_times=heartbeat,
                 live=True, observe_s=90, report_interval_s=REPORT_INTERVAL_S,
                 expected=(Expected(type="device_offline", severity="medium", at_s=heartbeat[-1] + _SILENCE_S,
                                    first_s=heartbeat[-1], last_s=heartbeat[-1], early_s=3, late_s=30,
                                    delay_s=_SILENCE_S),)),
        Scenario(name="offline_heartbeat_jitter", kind="home", role="outside",
                 summary="a hub reporting every 5 s with gaps of up to 12 s (under 3 × 5 s) for 90 s",
                 duration_s=jittered[-1] + 1, sample_s=REPORT_INTERVAL_S, message_s=1, sample_times=jittered,
                 live=True, observe_s=jittered[-1] + 3, report_interval_s=REPORT_INTERVAL_S,
                 absent=("device_offline",)),
    ]
