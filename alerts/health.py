"""Component health: each probe answers up or down within a short time, or counts as down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from psycopg_pool import AsyncConnectionPool

from alerts.ports import HealthProbe

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


def tcp_probe(host: str, port: int) -> HealthProbe:
    """Up when something accepts a TCP connection there: a cheap check of a broker's listener."""

    async def probe() -> bool:
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()
        return True

    return probe
