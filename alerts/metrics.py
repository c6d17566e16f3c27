"""Prometheus metrics of the alert consumer and the outreach sender, registered once at import."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

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
OUTREACH_SENT = Counter(
    "vigil_outreach_sent_total",
    "Outreach messages delivered, by channel (the Apprise URL's scheme).",
    ["channel"],
)
OUTREACH_FAILED = Counter(
    "vigil_outreach_failed_total",
    "Outreach send attempts that failed, by channel; final=true when the message was given up.",
    ["channel", "final"],
)
SCHEDULER_LEADER = Gauge(
    "vigil_scheduler_leader",
    "1 while this scheduler process holds the leader lock and runs the ladder, 0 while it stands by.",
)
