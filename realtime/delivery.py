"""This process's connections, their subscriptions, and in-order delivery of publications.

The registry of the hub (realtime/hub.py composes it): which local
connections exist, which channels each holds, and the one loop that writes a
publication to every local subscriber, once, in ``seq`` order. Whatever
brings a publication (the publisher in this process, the layer, the poller)
puts ``(channel, seq, text)`` on ``queue``; a gap is filled from the store with
``read_between``, handed in, so this module reads no database of its own.

The rule a caller must know: everything here runs on the event loop of the
server process; other threads hand publications in with ``deliver_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Protocol

from . import conf, counters
from .interest import Interest
from .protocol import CLOSE_REPLACED

logger = logging.getLogger("realtime.hub")  # a part of the hub: its lines keep the hub's name

# (channel, seq, text): one stored publication, as every path hands it over.
Publication = tuple[str, int, str]


class LocalConnection(Protocol):
    connection_id: str
    client_id: str
    user_id: str | None
    last_received: float
    # Optional: the token session it authenticated with (revocation.py reads it with getattr).
    # token_session: str | None

    def offer(self, channel: str, seq: int, text: str) -> Awaitable | None: ...

    async def close_with(self, code: int, error: dict | None = None, reason: str | None = None) -> None: ...

    def flush_batch(self, frames: dict) -> None: ...

    # Optional (a WebSocket consumer has them): ``transport_gone() -> bool`` and
    # ``async release()``, for the reap loop.


class Delivery:
    """Local connections, their subscriptions, and in-order delivery of publications."""

    def __init__(self, read_between: Callable[[str, int, int], Awaitable[list[tuple[int, str]]]]) -> None:
        self.read_between = read_between
        self.loop: asyncio.AbstractEventLoop | None = None
        self.connections: dict[str, LocalConnection] = {}
        self.by_client: dict[tuple[str, str], LocalConnection] = {}
        self.subscribers: dict[str, set[LocalConnection]] = defaultdict(set)
        # The highest seq this process has delivered per channel: drops repeats
        # (the same publication arriving locally, by the layer and by the poller).
        self.delivered_seq: dict[str, int] = {}
        self.queue: asyncio.Queue[Publication] = asyncio.Queue()
        # layer_publications: rt.publish messages the layer brought (interest routing, realtime/interest.py).
        self.stats = {"messages_in": 0, "messages_out": 0, "publications": 0, "layer_publications": 0}
        # Set when the layer reaches other processes: the channel groups this process joins.
        self.interest: Interest | None = None
        # ?batch=1 sockets with publications waiting, and the one timer of their tick.
        self.batch_due: list[LocalConnection] = []
        self.batch_timer: asyncio.TimerHandle | None = None

    # --- connections -----------------------------------------------------

    async def claim_client_id(self, conn: LocalConnection) -> None:
        """An older connection of the same user and client id is replaced (4409)."""
        if conn.user_id is None:
            return
        key = (conn.user_id, conn.client_id)
        older = self.by_client.get(key)
        self.by_client[key] = conn
        if older is not None and older is not conn:
            await older.close_with(CLOSE_REPLACED)

    def remove(self, conn: LocalConnection) -> None:
        self.connections.pop(conn.connection_id, None)
        if conn.user_id is not None and self.by_client.get((conn.user_id, conn.client_id)) is conn:
            del self.by_client[(conn.user_id, conn.client_id)]
        for channel in list(self.subscribers):
            subs = self.subscribers[channel]
            subs.discard(conn)
            if not subs:
                self._forget(channel)

    def subscribe(self, conn: LocalConnection, channel: str) -> None:
        first = channel not in self.subscribers
        self.subscribers[channel].add(conn)
        if first and self.interest is not None:
            self.interest.want(channel)  # join the channel's layer group (realtime/interest.py)

    def unsubscribe(self, conn: LocalConnection, channel: str) -> None:
        subs = self.subscribers.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                self._forget(channel)

    def _forget(self, channel: str) -> None:
        # Nobody here listens any more: the next subscriber starts the count afresh
        # (note_latest), so the poller does not replay what happened meanwhile.
        del self.subscribers[channel]
        self.delivered_seq.pop(channel, None)
        if self.interest is not None:
            self.interest.drop(channel)

    async def close_local(self, connection_id: str, code: int) -> bool:
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        await conn.close_with(code)
        return True

    async def take_over(self, user_id: str, client_id: str, connection_id: str) -> None:
        """Another process holds the newest connection of (user, client id): close ours (4409)."""
        conn = self.by_client.get((user_id, client_id))
        if conn is not None and conn.connection_id != connection_id:
            await conn.close_with(CLOSE_REPLACED)

    # --- delivery --------------------------------------------------------

    def deliver_threadsafe(self, channel: str, seq: int, text: str) -> None:
        """Hand a committed publication to this process's sockets, from any thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (channel, seq, text))

    async def run(self) -> None:
        while True:
            channel, seq, text = await self.queue.get()
            try:
                await self._deliver(channel, seq, text)
            except Exception:
                logger.exception("delivery of %s#%s failed", channel, seq)
            if not self.queue.empty():
                # A burst (the poller hands over many at once): one loop turn
                # between publications lets Twisted hand what it holds to the
                # kernel, so a reader that keeps up never nears its send bound.
                await asyncio.sleep(0)

    async def _deliver(self, channel: str, seq: int, text: str) -> None:
        last = self.delivered_seq.get(channel)
        if last is not None and seq <= last:
            return
        if last is not None and seq > last + 1:
            # A publication overtook an earlier one (two publishers, two paths):
            # fill the gap from the store so every socket sees seq in order.
            for missed_seq, missed_text in await self.read_between(channel, last, seq):
                await self._fan(channel, missed_seq, missed_text)
        await self._fan(channel, seq, text)

    async def _fan(self, channel: str, seq: int, text: str) -> None:
        self.stats["publications"] += 1
        subs = self.subscribers.get(channel)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("publication %s#%s to %d local subscribers", channel, seq, len(subs or ()))
        if not subs:
            return  # and remember nothing: no state for channels nobody here holds
        self.delivered_seq[channel] = seq
        for conn in list(subs):
            try:
                pending = conn.offer(channel, seq, text)
                if pending is not None:
                    await pending
            except Exception:
                logger.exception("push to %s failed", conn.connection_id)
        self.stats["messages_out"] += len(subs)
        counters.observe_delivery(text)

    def flush_at_tick(self, conn: LocalConnection) -> None:
        """``conn`` (a ``?batch=1`` socket) has a first publication waiting: send it at the next tick.

        One timer per process, not per socket, and one encoded frame per distinct
        batch: a timer and a frame per socket per tick cost more than batching saved.
        """
        self.batch_due.append(conn)
        if self.batch_timer is None:
            loop = self.loop or asyncio.get_running_loop()
            self.batch_timer = loop.call_later(float(conf.get("WEBSOCKET_BATCH_TICK")), self._batch_tick)

    def _batch_tick(self) -> None:
        self.batch_timer = None
        due, self.batch_due = self.batch_due, []
        frames: dict = {}
        for conn in due:
            try:
                conn.flush_batch(frames)
            except Exception:
                logger.exception("batch flush to %s failed", conn.connection_id)

    def note_latest(self, channel: str, seq: int) -> None:
        """A socket subscribed at ``seq``: this process is current on ``channel`` up to there."""
        self.delivered_seq.setdefault(channel, seq)
