"""The poller (realtime/poller.py) hands each stored publication to delivery once, however often it is rung.

The real store (publish() and the poller's read, on the test database) and a
real queue that nobody takes from: the deliver loop is behind, as it is while a
fan-out to 1,000 sockets runs (~15 ms each).
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from realtime import publisher
from realtime.poller import Poller

pytestmark = pytest.mark.django_db(transaction=True)

publish = database_sync_to_async(publisher.publish)


async def take(queue: asyncio.Queue, seen: list[int], until) -> None:
    """Move queued seqs into ``seen`` until ``until(seen)``, for at most 5 s."""
    async with asyncio.timeout(5):
        while not until(seen):
            seen.append((await queue.get())[1])


def start(queue: asyncio.Queue, delivered: dict[str, int]) -> tuple[Poller, asyncio.Task]:
    poller = Poller("this-server", {"global"}, delivered, database_sync_to_async(publisher.stored_after), queue.put)
    return poller, asyncio.ensure_future(poller.run())


async def test_rings_while_delivery_is_behind_queue_each_publication_once(settings):
    """Each ring used to read and queue again all that was not delivered yet: a burst of
    N publications queued ~N^2/2, and a loaded server fell further behind with each one."""
    settings.REALTIME_POLL_INTERVAL = 3600  # rings only
    queue: asyncio.Queue = asyncio.Queue()
    poller, task = start(queue, {"global": 0})  # nothing delivered: the deliver loop is busy
    seen: list[int] = []
    try:
        for seq in range(1, 11):
            await publish("global", {"type": "announcement", "message": str(seq)})
            poller.ring("another-server", "global", seq)
            await take(queue, seen, lambda seen, seq=seq: seq in seen)
    finally:
        task.cancel()
    assert seen == list(range(1, 11))
    assert queue.empty()


async def test_what_is_queued_but_never_delivered_is_read_again_at_a_full_poll(settings):
    """The safety net stays: no delivery progress for a whole interval, and the poller reads it again."""
    settings.REALTIME_POLL_INTERVAL = 0.2
    queue: asyncio.Queue = asyncio.Queue()
    await publish("global", {"type": "announcement", "message": "dropped"})
    _, task = start(queue, {"global": 0})  # delivered stays 0: as if the delivery had failed
    seen: list[int] = []
    try:
        await take(queue, seen, lambda seen: seen.count(1) >= 2)
    finally:
        task.cancel()
