"""The alerts service: the HTTP API for care managers and operators, and the alert-event consumer."""
