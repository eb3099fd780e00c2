"""The database poller: publications other processes committed, read from the store.

At once for the channels rung (realtime/doorbell.py calls ``ring``, a newly
joined layer group calls ``read_now``), every REALTIME_POLL_INTERVAL for every
locally subscribed channel (the safety net). What it reads goes to ``put``, the
delivery queue (realtime/delivery.py), which drops what was delivered already.

Everything it needs is handed in: the channels subscribed here and the seq
delivered per channel (read, never written), the store read, the queue to fill.

It reads each stored publication once: from the highest seq it has queued,
not from the highest delivered. While the deliver loop is behind (a fan-out
to 1,000 sockets takes ~15 ms), every ring used to read and queue again all
that was still undelivered: a burst of N publications queued ~N^2/2, and a
server under load fell further behind with each one, until publications were
tens of seconds late (bench/README.md). What is queued is delivered (the queue
is in-process); a channel whose delivery makes no progress for a whole
interval is read again from what was delivered, so the safety net stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping

from . import conf

logger = logging.getLogger("realtime.hub")  # a part of the hub: its lines keep the hub's name

Publication = tuple[str, int, str]


class Poller:
    def __init__(
        self,
        server_id: str,
        subscribed: Collection[str],
        delivered_seq: Mapping[str, int],
        read_after: Callable[[dict[str, int]], Awaitable[Iterable[Publication]]],
        put: Callable[[Publication], Awaitable[None]],
    ) -> None:
        self.server_id = server_id
        self.subscribed = subscribed
        self.delivered_seq = delivered_seq
        self.read_after = read_after
        self.put = put
        # Channels another process rang the doorbell for (realtime/doorbell.py):
        # read at once instead of at the next interval.
        self.rung: set[str] = set()
        self.rang = asyncio.Event()
        # The highest seq handed to ``put`` per channel, and the delivered seq at the last full poll.
        self.queued: dict[str, int] = {}
        self.delivered_at_full: dict[str, int] = {}

    def ring(self, origin: str, channel: str, seq: int) -> None:
        """A doorbell: ``channel`` reached ``seq`` in another process. Read it now if it is news here."""
        if origin == self.server_id or channel not in self.subscribed:
            return
        if self.delivered_seq.get(channel, -1) >= seq:
            return  # delivered already (the layer or an earlier read was faster)
        self.rung.add(channel)
        self.rang.set()

    def read_now(self, channel: str) -> None:
        """Joined ``channel``'s layer group: read it from the store now, for what passed meanwhile."""
        self.rung.add(channel)
        self.rang.set()

    def poll_all_now(self) -> None:
        """Rings may have been lost (the doorbell reconnected): look at every channel now."""
        self.rung.update(self.subscribed)
        self.rang.set()

    async def run(self) -> None:
        """Pick up publications committed by other processes: at once for rung
        channels (the doorbell), every REALTIME_POLL_INTERVAL for all (the safety net).

        It compares each locally subscribed channel's stored sequence with what
        this process delivered, so it sees every commit whatever the order in
        which concurrent transactions got their row ids.
        """
        interval = float(conf.get("REALTIME_POLL_INTERVAL"))
        next_full = time.monotonic() + interval
        while True:
            timeout = next_full - time.monotonic()
            if timeout > 0 and not self.rung:
                try:
                    await asyncio.wait_for(self.rang.wait(), timeout)
                except TimeoutError:
                    pass
            self.rang.clear()
            full = time.monotonic() >= next_full
            if full:
                next_full = time.monotonic() + interval
                self.rung.clear()
                channels = list(self.subscribed)
            else:
                channels, self.rung = list(self.rung), set()
            known = self._read_from(channels, full)
            if not known:
                continue
            try:
                rows = await self.read_after(known)
            except Exception:
                logger.warning("polling stored messages failed; retrying", exc_info=True)
                continue
            for item in rows:
                channel, seq = item[0], item[1]
                if seq > self.queued.get(channel, 0):
                    self.queued[channel] = seq
                await self.put(item)

    def _read_from(self, channels: list[str], full: bool) -> dict[str, int]:
        """The seq to read each channel after: what was queued, unless delivery is stuck."""
        known = {}
        for channel in channels:
            delivered = self.delivered_seq.get(channel)
            if delivered is None:
                continue
            after = max(delivered, self.queued.get(channel, delivered))
            if full:
                if self.delivered_at_full.get(channel) == delivered:
                    after = delivered  # no progress for an interval: read again what is not delivered
                self.delivered_at_full[channel] = delivered
            known[channel] = after
        if full:  # forget the channels nobody here holds any more
            for state in (self.queued, self.delivered_at_full):
                for channel in [ch for ch in state if ch not in self.delivered_seq]:
                    del state[channel]
        return known
