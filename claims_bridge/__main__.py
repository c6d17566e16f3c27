"""`python -m claims_bridge`: the claims bridge, run by `vigil run`, until SIGTERM or SIGINT.

Any number may run at once: they share the work through PostgreSQL row locks and the Kafka group.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import start_http_server

from claims_bridge.service import ClaimsBridge
from vigil.logs import configure_logging
from vigil.settings import ConfigError, Settings, get_settings

log = logging.getLogger("claims_bridge")


async def serve(settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    bridge = ClaimsBridge(settings)
    await bridge.start()
    log.info("claims bridge running")
    try:
        await stopping.wait()
    finally:
        await bridge.stop()
    log.info("claims bridge stopped")


def main() -> None:
    try:
        settings = get_settings()
    except ConfigError as e:
        sys.exit(f"vigil claims: {e}")
    configure_logging(settings.log_level)
    # httpx logs every request at INFO; the delivery worker logs each attempt with what it came to.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if settings.claims_metrics_port:
        try:
            start_http_server(settings.claims_metrics_port, addr="127.0.0.1")
        except OSError as e:
            # A second bridge on one host must still run: they share the work.
            log.warning("no metrics: port %d is not free (%s)", settings.claims_metrics_port, e)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
