"""The database poller: publications other processes committed, read from the store.

At once for the channels rung (realtime/doorbell.py calls ``ring``, a newly
joined layer group calls ``read_now``), every REALTIME_POLL_INTERVAL for every
locally subscribed channel (the safety net). What it reads goes to ``put``, the
delivery queue (realtime/delivery.py), which drops what was delivered already.

Everything it needs is handed in: the channels subscribed here and the seq
delivered per channel (read, never written), the store read, the queue to fill.
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
            if time.monotonic() >= next_full:
                next_full = time.monotonic() + interval
                self.rung.clear()
                channels = list(self.subscribed)
            else:
                channels, self.rung = list(self.rung), set()
            known = {ch: self.delivered_seq[ch] for ch in channels if ch in self.delivered_seq}
            if not known:
                continue
            try:
                rows = await self.read_after(known)
            except Exception:
                logger.warning("polling stored messages failed; retrying", exc_info=True)
                continue
            for item in rows:
                await self.put(item)
