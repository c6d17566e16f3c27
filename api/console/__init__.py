"""The care-manager console at `/`: server-rendered pages over the API's own access rules and alert actions."""
