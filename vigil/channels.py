"""The PostgreSQL NOTIFY channels services speak on; a sender and its listeners must agree on the name."""

# Any change an alert's viewer should see (payload: the alert id); the console's live feed listens.
ALERTS_CHANNEL = "vigil_alerts"
# Ladder steps planned, moved or stopped (payload: the alert id); the scheduler's planner listens.
LADDER_CHANNEL = "vigil_ladder"
# Outbox rows ready to send (payload: the alert id); the scheduler's sender listens.
OUTREACH_CHANNEL = "vigil_outreach"
# Incidents recorded (the claims bridge's consumer); the claim builder listens, and to ALERTS_CHANNEL,
# since an incident's claim is built when its alert ends.
INCIDENTS_CHANNEL = "vigil_incidents"
# Claims confirmed, so a delivery row is due; the bridge's delivery worker listens.
CLAIM_DELIVERIES_CHANNEL = "vigil_claim_deliveries"
# Members' notices about their claims ready to send; the bridge's notice worker listens.
CLAIM_NOTICES_CHANNEL = "vigil_claim_notices"
