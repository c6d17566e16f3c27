"""Idempotent batch writers used by the stream workers: readings (COPY) and dead letters.

Readings are staged with COPY and moved in one statement that first claims each (device_id, seq)
in the `messages` ledger; only messages claimed now have their readings inserted, so a redelivered
message stores nothing twice. Timestamps travel as epoch milliseconds and are converted in SQL.
The same transaction moves each device's `device_liveness` forward, for `device_offline`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import psycopg

from vigil.telemetry import DeadLetter

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_messages (
    device_id text, seq bigint, sent_ms bigint, received_ms bigint, readings integer
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_readings (
    device_id text, seq bigint, ts_ms bigint, metric text, value double precision
) ON COMMIT DELETE ROWS;
"""

_MOVE = """
WITH claimed AS (
    INSERT INTO messages (device_id, seq, sent_at, received_at, readings)
    SELECT device_id, seq, to_timestamp(sent_ms / 1000.0), to_timestamp(received_ms / 1000.0), readings
    FROM stage_messages
    ON CONFLICT (device_id, seq) DO NOTHING
    RETURNING device_id, seq
)
INSERT INTO readings (device_id, ts, metric, value, seq)
SELECT r.device_id, to_timestamp(r.ts_ms / 1000.0), r.metric, r.value, r.seq
FROM stage_readings r JOIN claimed USING (device_id, seq)
"""

# One row per device in the batch; GREATEST, because batches from a rebalance or a redelivery may
# be older than what is stored. Sorted so concurrent workers lock rows in one order.
_LIVENESS = """
INSERT INTO device_liveness AS l (device_id, last_message_at)
SELECT device_id, to_timestamp(max(received_ms) / 1000.0) FROM stage_messages
GROUP BY device_id ORDER BY device_id
ON CONFLICT (device_id) DO UPDATE SET last_message_at = GREATEST(l.last_message_at, EXCLUDED.last_message_at)
"""


async def prepare(conn: psycopg.AsyncConnection) -> None:
    """Create the session's staging tables; call once per connection."""
    await conn.execute(_STAGE)
    await conn.commit()


async def store_records(conn: psycopg.AsyncConnection, records: Iterable[dict]) -> int:
    """Store telemetry records (dicts shaped like TelemetryRecord); returns readings inserted."""
    unique: dict[tuple[str, int], dict] = {}
    for record in records:
        unique.setdefault((record["device_id"], record["seq"]), record)
    async with conn.transaction(), conn.cursor() as cur:
        async with cur.copy("COPY stage_messages FROM STDIN") as copy:
            for r in unique.values():
                await copy.write_row((r["device_id"], r["seq"], r["sent_at_ms"], r["received_at_ms"],
                                      len(r["readings"])))
        async with cur.copy("COPY stage_readings FROM STDIN") as copy:
            for r in unique.values():
                device_id, seq = r["device_id"], r["seq"]
                for ts_ms, metric, value in r["readings"]:
                    await copy.write_row((device_id, seq, ts_ms, metric, value))
        await cur.execute(_MOVE)
        inserted = cur.rowcount
        await cur.execute(_LIVENESS)
        return inserted


def fingerprint(dead: DeadLetter) -> str:
    digest = hashlib.sha256()
    for part in (dead.topic, dead.reason, dead.detail, str(dead.seq), dead.payload):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


async def store_dead_letters(conn: psycopg.AsyncConnection, letters: Sequence[DeadLetter]) -> int:
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO dead_letters (fingerprint, received_at, reason, detail, topic, device_id, seq, payload) "
            "VALUES (%s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s) ON CONFLICT (fingerprint) DO NOTHING",
            [(fingerprint(d), d.received_at_ms, d.reason, d.detail, d.topic, d.device_id, d.seq,
              d.payload.replace("\x00", "")) for d in letters],
        )
        return len(letters)
