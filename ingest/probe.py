"""The loop probe: ingest's heartbeat is earned by a message that went all the way round.

A heartbeat says "devices' messages reach Vigil now"; `device_offline` counts a device's silence
only while heartbeats arrive. A timer that sends heartbeats while a flag is set would keep saying
so after the MQTT loop died, got stuck in a callback, or the broker stopped delivering. So ingest
publishes a small probe to a topic of its own and sends the heartbeat when the probe comes back
through the same broker connection and the same `on_message` that telemetry takes.

Plain state and a clock reading in, decisions out: the service supplies the time and the I/O.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

# A probe not back by then was lost (QoS 0 is dropped on a reconnect) or is stuck behind the loop:
# send another. Stuck ones pile up at most one per this interval.
PROBE_RETRY_MS = 10_000


@dataclass(slots=True)
class LoopProbe:
    """Probes of one ingest process: what to send, and whether what came back is one of ours."""

    # Unguessable and new per process: a probe of an earlier process, or another instance misconfigured
    # with the same topic, does not count.
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    sent: int = 0
    outstanding_since_ms: int | None = None
    last_returned_ms: int | None = None

    def due(self, now_ms: int) -> bool:
        """Whether to publish a probe now: none is on its way, or the last one is overdue."""
        return self.outstanding_since_ms is None or now_ms - self.outstanding_since_ms >= PROBE_RETRY_MS

    def next(self, now_ms: int) -> bytes:
        """The next probe's payload; it is on its way from now."""
        self.sent += 1
        self.outstanding_since_ms = now_ms
        return json.dumps({"token": self.token, "n": self.sent, "sent_at_ms": now_ms}).encode()

    def returned(self, payload: bytes, now_ms: int) -> int | None:
        """The round trip in ms when `payload` is one of our probes, None when it is not.

        Any of ours proves the loop moves now, even one that was overdue.
        """
        try:
            body = json.loads(payload)
            if body["token"] != self.token:
                return None
            sent_at_ms = int(body["sent_at_ms"])
        except (ValueError, TypeError, KeyError):
            return None
        self.outstanding_since_ms = None
        self.last_returned_ms = now_ms
        return max(0, now_ms - sent_at_ms)

    def silent_for_ms(self, now_ms: int, started_ms: int) -> int:
        """How long no probe has come back (since `started_ms` when none ever has)."""
        return now_ms - (self.last_returned_ms if self.last_returned_ms is not None else started_ms)
