"""The MQTT broker's refusals, counted from its log for Prometheus.

Mosquitto counts none of them itself: a packet over `max_packet_size`, a login refused, a
connection that never sent CONNECT or went silent, one over `max_connections` show only as log
lines. The broker publishes its log to `$SYS/broker/log/<level>` (`log_dest topic` in both
configurations); the admin session reads the levels below and counts each line it recognises.
Lines published while no admin session is connected are not counted.
"""

from __future__ import annotations

import re

from prometheus_client import Counter

# Notice, warning and error: where Mosquitto 2.0 logs disconnections and refused connections.
LOG_TOPICS = ("$SYS/broker/log/N", "$SYS/broker/log/W", "$SYS/broker/log/E")

BROKER_DROPS = Counter(
    "vigil_broker_drops_total",
    "Connections or packets the MQTT broker refused or dropped, by reason, counted from its log "
    "by this process's admin session (every such session counts the same lines: do not sum "
    "across processes)",
    ["reason"],
)

# Mosquitto 2.0's wording; a client that never sent CONNECT is logged as `<unknown>`.
_REASONS = (
    (re.compile(r"Client \S+ disconnected due to oversize (packet|payload)\."), "oversize_packet"),
    (re.compile(r"Client \S+ disconnected, not authorised\."), "not_authorised"),
    (re.compile(r"Client <unknown> has exceeded timeout"), "connect_timeout"),
    (re.compile(r"Client \S+ has exceeded timeout"), "keepalive_timeout"),
    (re.compile(r"denied: max_connections exceeded\."), "max_connections"),
    (re.compile(r"system socket count has been exceeded"), "open_file_limit"),
    (re.compile(r"Client \S+ disconnected due to (malformed packet|protocol error)\."), "malformed_packet"),
)


def drop_reason(line: str) -> str | None:
    """The reason a broker log line reports a refused or dropped connection or packet, else None."""
    for pattern, reason in _REASONS:
        if pattern.search(line):
            return reason
    return None


def count(line: str) -> str | None:
    """Count the line in `vigil_broker_drops_total` when it reports a drop; returns the reason."""
    reason = drop_reason(line)
    if reason is not None:
        BROKER_DROPS.labels(reason=reason).inc()
    return reason
