"""The HTTP API service: routes, schemas, auth, health, and the wiring that runs the alert consumer beside it."""
