"""The PostgreSQL NOTIFY channels alerting speaks on; a sender and its listeners must agree on the name."""

# Any change an alert's viewer should see (payload: the alert id); the console's live feed listens.
ALERTS_CHANNEL = "vigil_alerts"
# Ladder steps planned, moved or stopped (payload: the alert id); the scheduler's planner listens.
LADDER_CHANNEL = "vigil_ladder"
# Outbox rows ready to send (payload: the alert id); the scheduler's sender listens.
OUTREACH_CHANNEL = "vigil_outreach"
