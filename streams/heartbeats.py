"""`store_heartbeats`: ingest's heartbeats -> `pipeline_heartbeats`, the proof that the pipeline is live.

Ingest sends a heartbeat only when its probe has come back through the broker and its MQTT message
loop (`ingest/probe.py`), so a heartbeat that reaches the database has crossed the path device
messages take: broker, ingest's loop, Kafka and the stream worker. Each component's row says since
when that path has worked without a break; `/health` and `device_offline` read it. Times are the database's
clock at storing, not the heartbeat's own: heartbeats replayed from a backlog after an outage then
start a new run instead of papering over the gap.
"""

from __future__ import annotations

import json
import logging

import faust
import psycopg

from streams.database import RetryingSession
from streams.shielding import finish
from vigil.settings import Settings
from vigil.storage.text import clean_text
from vigil.topics import HEARTBEAT_GAP_S, HEARTBEATS

log = logging.getLogger(__name__)
HEARTBEAT_BATCH = 100

_UPSERT = """
INSERT INTO pipeline_heartbeats AS h (component, first_at, last_at)
VALUES (%(component)s, now(), now())
ON CONFLICT (component) DO UPDATE SET
    first_at = CASE WHEN h.last_at < now() - %(gap_s)s * interval '1 second' THEN now() ELSE h.first_at END,
    last_at = now()
"""


def add_heartbeat_agent(app: faust.App, settings: Settings) -> None:
    """Register the `store_heartbeats` agent on the stream worker's app."""
    heartbeats = app.topic(HEARTBEATS, key_serializer="raw", value_serializer="raw", partitions=1)
    db = RetryingSession(settings.database_url)

    @app.agent(heartbeats)
    async def store_heartbeats(stream):
        async for values in stream.take(HEARTBEAT_BATCH, within=1.0):
            components = sorted({c for c in map(_component, values) if c})
            if components:
                await finish(db.run(lambda conn, cs=components: record_heartbeats(conn, cs)))


async def record_heartbeats(conn: psycopg.AsyncConnection, components: list[str]) -> None:
    """Extend (or, after a gap, restart) each component's run of heartbeats."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.executemany(_UPSERT, [{"component": c, "gap_s": HEARTBEAT_GAP_S} for c in components])


def _component(value: bytes) -> str | None:
    try:
        component = json.loads(value)["component"]
    except (ValueError, TypeError, KeyError) as e:
        log.error("skipping a malformed heartbeat %r: %s", (value or b"")[:200], e)
        return None
    # A name PostgreSQL cannot store (NUL, a lone surrogate) must not jam the agent: clean it.
    return clean_text(component) if isinstance(component, str) and component else None
