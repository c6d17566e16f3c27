"""Prometheus metrics of the claims bridge, registered once at import."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

INCIDENTS_RECEIVED = Counter(
    "vigil_claims_incidents_received_total",
    "Incident events read from the incidents topic, by whether they were new or a redelivery.",
    ["outcome"],
)
MALFORMED_INCIDENTS = Counter(
    "vigil_claims_incidents_malformed_total",
    "Incidents-topic records that could not be decoded and were skipped.",
)
INCIDENT_STORE_RETRIES = Counter(
    "vigil_claims_incident_store_retries_total",
    "Failed attempts to write a batch of incidents to PostgreSQL (each is retried).",
)
CLAIMS_OPENED = Counter(
    "vigil_claims_opened_total",
    "Claims opened from incidents, by type (water_damage, fire, accident).",
    ["type"],
)
DECISIONS_WITHOUT_CLAIM = Counter(
    "vigil_claims_decisions_without_claim_total",
    "Incidents decided without a claim: not covered by the policy, member gone, or not built (an error).",
    ["why"],
)
DELIVERY_ATTEMPTS = Counter(
    "vigil_claims_delivery_attempts_total",
    "Attempts to deliver a claim to the insurer, by outcome (delivered, retry, failed).",
    ["outcome"],
)
NOTICES = Counter(
    "vigil_claims_notices_total",
    "Member notices about claims, by what their send came to (sent, pending, failed, skipped).",
    ["status"],
)
OLDEST_PENDING_DELIVERY_AGE = Gauge(
    "vigil_claims_oldest_pending_delivery_age_seconds",
    "Age of the oldest claim still waiting to be delivered to the insurer (0 when none waits).",
)
