"""Live alert changes for the console: one LISTEN connection per app, fanned out to the open pages.

Every change to an alert is a `NOTIFY vigil_alerts, '<alert id>'` (`alerts.store`, `alerts.actions`).
The feed looks up whose member the alert is once per notification and hands the id only to the
subscribers allowed to see it; the others learn only that the feed moved on (its `position`).

A page knows the position its content was read at. When it (re)connects from another position, or
when it may have missed something (the connection to PostgreSQL was lost, the page fell behind), it
is told to `resync`: it reloads what it shows. So no change is lost between two streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from api.auth import Principal
from vigil.channels import ALERTS_CHANNEL

log = logging.getLogger(__name__)

RESYNC = "resync"
RECONNECT_PAUSE_S = 2.0
# notifies() waits at most this long before the connection is checked: a peer that vanished without
# closing the socket would otherwise leave the feed listening to nothing.
CHECK_EVERY_S = 30.0
# A page that stops reading (a frozen tab) loses its backlog and resyncs instead of growing it.
BACKLOG = 64
# Past its lifetime plus this, a subscription is taken to be abandoned.
STALE_AFTER_S = 30.0

# Whether an alert exists and its member's care manager.
OwnerLookup = Callable[[str], Awaitable[tuple[bool, str | None]]]
# (the feed's position after it, an alert id, None for one the subscriber may not see, or RESYNC)
Item = tuple[str, str | None]


@dataclass(eq=False)
class Subscription:
    """One open stream's queue of items."""

    principal: Principal
    # Loop time after which the stream is surely over, even if it never got to unsubscribe.
    ends_by: float
    queue: asyncio.Queue[Item] = field(default_factory=lambda: asyncio.Queue(BACKLOG))

    def offer(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait((item[0], RESYNC))


class AlertFeed:
    """Listens on `vigil_alerts` for the app's lifetime, reconnecting in the background when PostgreSQL goes."""

    def __init__(self, database_url: str, owner_of: OwnerLookup) -> None:
        self._database_url = database_url
        self._owner_of = owner_of
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        # Positions of another process (or of this one before a restart) never match this one's.
        self._boot = secrets.token_hex(4)
        self._seq = 0
        self.listening = asyncio.Event()

    @property
    def position(self) -> str:
        """How far the feed has got: a page read at this position has missed nothing up to it."""
        return f"{self._boot}-{self._seq}"

    async def start(self) -> None:
        # Without waiting: the console starts while PostgreSQL is down, and catches up when it is back.
        self._task = asyncio.create_task(self._run(), name="console-alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, principal: Principal, lifetime_s: float) -> Subscription:
        """A queue for one stream that lasts `lifetime_s`; the stream unsubscribes when it ends."""
        now = asyncio.get_running_loop().time()
        # A response whose client left before its body started never runs its clean-up: drop those here.
        self._subscribers = {s for s in self._subscribers if s.ends_by > now}
        subscription = Subscription(principal, now + lifetime_s + STALE_AFTER_S)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    async def deliver(self, payload: str) -> None:
        """Move the feed on by one notification, handing its alert id to those who may see that alert."""
        self._seq += 1
        position = self.position
        if not self._subscribers:
            return
        try:
            alert_id = str(uuid.UUID(payload))
        except ValueError:
            log.warning("ignoring a %s notification that is not an alert id: %r", ALERTS_CHANNEL, payload[:100])
            alert_id = None
        exists, care_manager_id = await self._owner_of(alert_id) if alert_id else (False, None)
        for subscription in list(self._subscribers):
            visible = exists and subscription.principal.may_see(care_manager_id)
            subscription.offer((position, alert_id if visible else None))

    def resync_all(self) -> None:
        """Everyone reloads: something may have changed that the feed did not hear."""
        self._seq += 1
        for subscription in list(self._subscribers):
            subscription.offer((self.position, RESYNC))

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as e:
                log.warning("console alert feed lost PostgreSQL (%s); reconnecting in %.0f s", e, RECONNECT_PAUSE_S)
            finally:
                self.listening.clear()
            await asyncio.sleep(RECONNECT_PAUSE_S)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._database_url, autocommit=True, connect_timeout=5
        ) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(ALERTS_CHANNEL)))
            self.listening.set()
            # Whatever changed while not listening was not heard.
            self.resync_all()
            log.info("console alert feed listening on %s", ALERTS_CHANNEL)
            while True:
                async for notify in conn.notifies(timeout=CHECK_EVERY_S):
                    try:
                        await self.deliver(notify.payload)
                    except psycopg.Error as e:
                        # The lookup runs on the pool: without it nobody can be told safely.
                        log.warning("console alert feed could not look up alert %s (%s)", notify.payload, e)
                        self.resync_all()
                await conn.execute("SELECT 1")
