"""The outreach log of one alert as `GET /alerts/{id}/outreach` shows it: every message sent or tried.

Never the row's `target` (an Apprise URL may hold a password or an API key) nor its text (health
data meant for its recipient only). A message grouped into another alert's message was never sent by
itself: it shows the status, attempts and time of the message that carried it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from vigil.storage.rows import fetch_all

_LOG = """
SELECT o.step, o.purpose, o.to_role, o.recipient_name, o.channel, o.reason, o.status AS own_status,
       o.attempts AS own_attempts, COALESCE(o.sent_at, o.updated_at) AS own_at,
       c.id AS carrier_id, c.status AS carrier_status, c.attempts AS carrier_attempts,
       COALESCE(c.sent_at, c.updated_at) AS carrier_at, ca.type AS carrier_type
FROM outreach o
LEFT JOIN outreach c ON c.id = o.grouped_into
LEFT JOIN alerts ca ON ca.id = c.alert_id
WHERE o.alert_id = %s
ORDER BY o.created_at, o.id
"""
# The lease state is the sender's business: to a reader the message is still on its way.
_SHOWN_STATUS = {"sending": "pending"}
_GROUPED = {
    "sent": "sent together with another alert's message",
    "failed": "grouped with another alert's message, which could not be sent",
    "skipped": "grouped with another alert's message, which was skipped",
    "held": "grouped with another alert's message, which is held",
}
_GROUPED_PENDING = "goes together with another alert's message"


async def outreach_log(conn: AsyncConnection, alert_id: str) -> list[dict[str, Any]]:
    """The alert's messages oldest first, as `OutreachEntry` fields."""
    return [_entry(row) for row in await fetch_all(conn, _LOG, (alert_id,))]


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    if row["carrier_id"] is None:
        status = _SHOWN_STATUS.get(row["own_status"], row["own_status"])
        return _shown(row, status, row["reason"], row["own_attempts"], row["own_at"])
    status = _SHOWN_STATUS.get(row["carrier_status"], row["carrier_status"])
    reason = f"{_GROUPED.get(status, _GROUPED_PENDING)} ({row['carrier_type']})"
    return _shown(row, status, reason, row["carrier_attempts"], row["carrier_at"])


def _shown(row: dict[str, Any], status: str, reason: str | None, attempts: int, at: datetime) -> dict[str, Any]:
    return {
        "step": row["step"],
        "purpose": row["purpose"],
        "to": row["to_role"],
        "recipient": row["recipient_name"],
        "channel": row["channel"],
        "status": status,
        "reason": reason,
        "attempts": attempts,
        "at": at,
    }
