"""Component health: each probe answers up or down within a short time, or counts as down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import psycopg
from psycopg_pool import AsyncConnectionPool

from api.ports import HealthProbe
from vigil.topics import HEARTBEAT_GAP_S

log = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 2.0


async def _is_up(name: str, probe: HealthProbe) -> bool:
    try:
        return bool(await asyncio.wait_for(probe(), PROBE_TIMEOUT_S))
    except Exception as e:  # whatever a probe raises, the component is not usable
        log.warning("health probe %s failed: %r", name, e)
        return False


async def check_components(probes: Mapping[str, HealthProbe]) -> dict[str, bool]:
    """Run every probe concurrently; name -> up."""
    names = list(probes)
    results = await asyncio.gather(*(_is_up(n, probes[n]) for n in names))
    return dict(zip(names, results, strict=True))


def database_probe(pool: AsyncConnectionPool) -> HealthProbe:
    async def probe() -> bool:
        async with pool.connection(timeout=PROBE_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")
        return True

    return probe


def pipeline_probe(database_url: str, *, max_silence_s: float = HEARTBEAT_GAP_S) -> HealthProbe:
    """Up when an ingest heartbeat was stored within `max_silence_s`: devices' messages flow now.

    A heartbeat is stored only after ingest's probe went round its MQTT message loop and the record
    crossed Kafka and the stream worker, so a stuck or dead ingest, or a worker that stores nothing,
    shows here as down; a TCP probe of the broker would still say up. The same gap tells the
    scheduler not to count devices' silence (`vigil.rules.offline.pipeline_live_since`).
    Its own connection: a busy API pool must not make the pipeline look down.
    """

    async def probe() -> bool:
        async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=int(PROBE_TIMEOUT_S),
                                                         autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pipeline_heartbeats"
                " WHERE last_at > now() - make_interval(secs => %s))", (max_silence_s,))
            row = await cur.fetchone()
        return bool(row and row[0])

    return probe


def tcp_probe(host: str, port: int) -> HealthProbe:
    """Up when something accepts a TCP connection there: a cheap check of a broker's listener."""

    async def probe() -> bool:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
        return True

    return probe
