"""`python -m api`: the API and the alert consumer in one process, stopped by SIGINT/SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from api.service import build_app
from vigil.logs import configure_logging
from vigil.settings import ConfigError, get_settings


def main() -> None:
    try:
        settings = get_settings()
    except ConfigError as e:
        sys.exit(f"vigil api: {e}")
    configure_logging(settings.log_level)
    # log_config=None keeps Vigil's log format instead of uvicorn's own. Open console streams would
    # otherwise hold a shutdown until `vigil run` kills the process; 3 s lets requests in flight finish.
    uvicorn.run(build_app(settings), host=settings.api_host, port=settings.api_port, log_config=None,
                timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main()
