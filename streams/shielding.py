"""Finishing a batch's work before Faust acknowledges it.

Faust's `take()` acknowledges a batch in a `finally`, also when the worker is stopping and the
agent is cancelled mid-body. Work that must happen before that acknowledgement (a database write,
publishing alerts and saving the state that remembers them) runs through `finish`: a cancellation
waits for it, and if it cannot finish in time the process exits without committing offsets, so the
batch is read again on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
SHUTDOWN_GRACE_S = 15


async def finish(work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), SHUTDOWN_GRACE_S)
        except (TimeoutError, asyncio.CancelledError):
            log.critical("stopping with a batch unfinished; exiting without committing its offsets")
            os._exit(os.EX_TEMPFAIL)  # 75: try again
        raise
