"""The live feed's fan-out: each page hears of the alerts its caller may see, and only learns the position of others."""

from __future__ import annotations

import asyncio

from api.auth import Principal
from api.console.feed import BACKLOG, RESYNC, AlertFeed

MINE = "0b7c8a54-5c1a-4a6b-9a40-3c1c2f6d1a01"
THEIRS = "0b7c8a54-5c1a-4a6b-9a40-3c1c2f6d1a02"
OWNERS = {MINE: "cm-1", THEIRS: "cm-2"}


async def _owner_of(alert_id: str) -> tuple[bool, str | None]:
    return alert_id in OWNERS, OWNERS.get(alert_id)


def _drain(queue: asyncio.Queue) -> list:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def test_each_subscriber_hears_only_of_alerts_it_may_see() -> None:
    async def run() -> None:
        feed = AlertFeed("postgresql://unused", _owner_of)
        cm1 = feed.subscribe(Principal("care_manager", "cm-1"), 10)
        cm2 = feed.subscribe(Principal("care_manager", "cm-2"), 10)
        admin = feed.subscribe(Principal("admin"), 10)
        start = feed.position
        await feed.deliver(MINE)
        await feed.deliver(THEIRS)
        await feed.deliver("not-a-uuid")
        await feed.deliver("0b7c8a54-5c1a-4a6b-9a40-3c1c2f6d1aff")  # an alert that no longer exists
        boot = start.rsplit("-", 1)[0]
        positions = [f"{boot}-{n}" for n in range(1, 5)]
        assert _drain(cm1.queue) == [(positions[0], MINE), (positions[1], None), (positions[2], None),
                                     (positions[3], None)]
        assert [item for _, item in _drain(cm2.queue)] == [None, THEIRS, None, None]
        assert [item for _, item in _drain(admin.queue)] == [MINE, THEIRS, None, None]
        assert feed.position == positions[-1]

    asyncio.run(run())


def test_a_subscriber_that_falls_behind_is_told_to_resync() -> None:
    async def run() -> None:
        feed = AlertFeed("postgresql://unused", _owner_of)
        slow = feed.subscribe(Principal("care_manager", "cm-1"), 10)
        for _ in range(BACKLOG + 1):
            await feed.deliver(MINE)
        assert _drain(slow.queue) == [(feed.position, RESYNC)]

    asyncio.run(run())


def test_unsubscribed_and_abandoned_streams_hear_nothing_more() -> None:
    async def run() -> None:
        feed = AlertFeed("postgresql://unused", _owner_of)
        gone = feed.subscribe(Principal("admin"), 10)
        feed.unsubscribe(gone)
        abandoned = feed.subscribe(Principal("admin"), -1e6)  # its lifetime is long past
        feed.subscribe(Principal("admin"), 10)  # subscribing sweeps the abandoned one out
        await feed.deliver(MINE)
        assert gone.queue.empty() and abandoned.queue.empty()

    asyncio.run(run())


def test_positions_of_two_feeds_never_match() -> None:
    assert AlertFeed("postgresql://unused", _owner_of).position != AlertFeed("postgresql://unused", _owner_of).position
