"""Prometheus metrics of the alert consumer, registered once at import."""

from __future__ import annotations

from prometheus_client import Counter

ALERT_EVENTS = Counter(
    "vigil_alert_events_total",
    "Alert events applied to the alerts table, by change and by what they did to it.",
    ["change", "outcome"],
)
MALFORMED_ALERT_EVENTS = Counter(
    "vigil_alert_events_malformed_total",
    "Alerts-topic records that could not be decoded and were skipped.",
)
ALERT_STORE_RETRIES = Counter(
    "vigil_alert_store_retries_total",
    "Failed attempts to write a batch of alert events to PostgreSQL (each is retried).",
)
