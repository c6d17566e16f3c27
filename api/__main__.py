"""`python -m api`: the API and the alert consumer in one process, stopped by SIGINT/SIGTERM."""

from __future__ import annotations

import uvicorn

from api.service import build_app
from vigil.logs import configure_logging
from vigil.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    # log_config=None keeps Vigil's log format instead of uvicorn's own.
    uvicorn.run(build_app(settings), host=settings.api_host, port=settings.api_port, log_config=None)


if __name__ == "__main__":
    main()
