"""`python -m ingest`: one ingest process in the foreground, stopped by SIGINT/SIGTERM.

Exits with status 1 when one of its threads died, so that its supervisor restarts it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from ingest.service import run
from vigil.broker_secrets import ensure_secrets
from vigil.logs import configure_logging
from vigil.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    status = run(settings, ensure_secrets(settings).ingest_password, stop)
    logging.getLogger(__name__).info("ingest stopped")
    sys.exit(status)


if __name__ == "__main__":
    main()
