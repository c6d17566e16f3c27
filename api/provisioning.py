"""Calling the MQTT broker's account provisioning from the API without blocking the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from api.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
# Past this the registration is abandoned (and rolled back); a late success only leaves an account
# whose password nobody knows, which the next registration of the same id resets.
BROKER_TIMEOUT_S = 10.0


async def provision(call: Callable[..., T], *args: Any, what: str) -> T:
    """Run a blocking broker call in a worker thread; any failure becomes a 503 naming `what`."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(call, *args), BROKER_TIMEOUT_S)
    except Exception as e:  # the adapter's failures are not ours to enumerate: all mean "not done"
        log.error("MQTT broker could not provision %s: %r", what, e)
        raise ServiceUnavailable(
            f"the MQTT broker could not create the account for {what}; nothing was registered, try again"
        ) from e
