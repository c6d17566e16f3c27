"""Reading back the stored readings that a batch's stragglers are judged against: one query per batch.

The telemetry agent stores a batch before judging it, so a reading older than its device's settled
time is in `readings` with every reading around it (see `vigil.rules.stragglers`). The windows of
every device of the batch go into one statement as arrays; it runs only for a batch that holds such
a reading. Each window is read per metric (every metric the contract knows, the only ones ingest
stores), so each is a range scan of the `(device_id, metric, ts)` index on plain PostgreSQL and on
TimescaleDB alike, however long the device's history. Equal readings stored by two messages come
back once: the rules judge a reading once, as the in-memory buffer does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import psycopg

from vigil.rules.stragglers import Window
from vigil.telemetry import METRICS

Reading = tuple[int, str, float]

_WINDOWS = """
SELECT DISTINCT w.device_id, round(extract(epoch FROM r.ts) * 1000)::bigint AS ts_ms, r.metric, r.value
FROM unnest(%(devices)s::text[], %(froms)s::bigint[], %(tos)s::bigint[]) AS w(device_id, from_ms, to_ms)
CROSS JOIN unnest(%(metrics)s::text[]) AS m(metric)
JOIN readings r ON r.device_id = w.device_id AND r.metric = m.metric
                AND r.ts >= to_timestamp(w.from_ms / 1000.0) AND r.ts < to_timestamp(w.to_ms / 1000.0)
"""


async def read_windows(conn: psycopg.AsyncConnection,
                       wanted: Iterable[tuple[str, Window]]) -> dict[str, list[Reading]]:
    """Each device's stored readings `(ts_ms, metric, value)` in its windows (unsorted)."""
    devices, froms, tos = [], [], []
    for device_id, window in wanted:
        devices.append(device_id)
        froms.append(window.from_ms)
        tos.append(window.to_ms)
    found: dict[str, list[Reading]] = defaultdict(list)
    if not devices:
        return found
    async with conn.cursor() as cur:
        await cur.execute(_WINDOWS, {"devices": devices, "froms": froms, "tos": tos, "metrics": list(METRICS)})
        for device_id, ts_ms, metric, value in await cur.fetchall():
            found[device_id].append((ts_ms, metric, value))
    # A read opens a transaction: end it, so the session's next COPY starts clean.
    await conn.rollback()
    return found
