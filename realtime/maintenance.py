"""The hub's housekeeping: heartbeats, history pruning, reaping, the presence grace.

- the maintenance loop: closes sockets silent for 2 x WEBSOCKET_HEARTBEAT_INTERVAL
  (4408), writes this server's heartbeat row and the coalesced per-connection
  touch (realtime/instances.py, connections.py), closes connections whose rows went elsewhere,
  and prunes history every HISTORY_PRUNE_PERIOD;
- the reap loop: releases a connection whose socket is gone but whose
  consumer never released it;
- the grace timers: a user with no connection left goes offline after
  WEBSOCKET_PRESENCE_GRACE.

The hub hands in what these act on: its connections, its database runner
(``db``: a function and its arguments, run off the loop), its id and whether it
is stopping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import conf, instances, presence, publisher
from . import connections as connection_rows
from .delivery import LocalConnection
from .protocol import CLOSE_DISCONNECTED, CLOSE_HEARTBEAT_TIMEOUT, CLOSE_TRY_AGAIN

logger = logging.getLogger("realtime.hub")  # a part of the hub: its lines keep the hub's name

# Seconds between automatic history prunes (REALTIME_HISTORY_SIZE / _TTL) per process.
HISTORY_PRUNE_PERIOD = 300.0


class Maintenance:
    def __init__(
        self,
        server_id: str,
        connections: Mapping[str, LocalConnection],
        db: Callable[..., Awaitable[Any]],
        stopping: Callable[[], bool],
    ) -> None:
        self.server_id = server_id
        self.connections = connections
        self.db = db
        self.stopping = stopping
        self.next_history_prune = 0.0
        self.offline_timers: dict[str, asyncio.TimerHandle] = {}

    async def run(self) -> None:
        interval = float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"))
        # A quarter interval keeps every bound of section 6 (silence closes after
        # 2x, dead servers pruned within 2x) with room to spare.
        tick = max(0.1, interval / 4)
        last_touch = time.monotonic()
        while not self.stopping():
            await asyncio.sleep(tick)
            if self.stopping():
                return  # shutdown() clears our rows; a heartbeat now would revive them
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if now - conn.last_received > 2 * interval:
                    await conn.close_with(CLOSE_HEARTBEAT_TIMEOUT)
            if now >= self.next_history_prune:
                # Retention runs here too, so `make run` needs no cron job.
                self.next_history_prune = now + HISTORY_PRUNE_PERIOD
                try:
                    await self.db(publisher.prune_history)
                except Exception:
                    logger.warning("history pruning failed", exc_info=True)
            try:
                # One row per process, whatever the number of connections (instances.py).
                beat = await self.db(instances.server_heartbeat, self.server_id, list(self.connections), interval)
                if now - last_touch >= interval:
                    # The coalesced per-connection write: at most once per interval,
                    # for the connections heard from since the last one; pings cost nothing.
                    heard = [cid for cid, c in self.connections.items() if c.last_received >= last_touch]
                    last_touch = now
                    if heard:
                        await self.db(connection_rows.touch_connections, heard)
            except Exception:
                logger.warning("heartbeat write failed; retrying", exc_info=True)
                continue
            # Rows deleted elsewhere: the admin's disconnect (4403), or another server
            # that took this one for dead (4503: the client reconnects and is recorded again).
            code = CLOSE_TRY_AGAIN if beat.revived else CLOSE_DISCONNECTED
            for connection_id in beat.gone:
                stale = self.connections.get(connection_id)
                if stale is not None:
                    await stale.close_with(code)

    async def reap(self) -> None:
        """The second line of defence: release a connection whose socket is gone
        but whose consumer never did (stuck in a handler, or a path that escaped
        its ``finally``). Seen gone on two ticks a quarter interval apart, so a
        consumer in the middle of its own release is not raced; well within the
        2 x interval of section 6. A loop of its own: the maintenance loop can
        wait on a locked database for as long as the busy timeout."""
        tick = max(0.1, float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL")) / 4)
        suspects: set[str] = set()
        while not self.stopping():
            await asyncio.sleep(tick)
            gone = {cid for cid, conn in self.connections.items() if _transport_gone(conn)}
            for cid in gone & suspects:
                # Optional on a LocalConnection: a consumer has it, and only it can say its socket is gone.
                release: Callable[[], Awaitable[None]] | None = getattr(self.connections.get(cid), "release", None)
                if release is not None:
                    logger.warning("connection %s: socket gone but never released; releasing it", cid)
                    asyncio.ensure_future(release())
            suspects = gone - suspects

    def schedule_offline(self, user_id: str) -> None:
        """After the grace period, a user with no connection left goes offline."""
        grace = float(conf.get("WEBSOCKET_PRESENCE_GRACE"))
        timer = self.offline_timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

        def fire() -> None:
            self.offline_timers.pop(user_id, None)
            asyncio.ensure_future(self._finish_offline(user_id))

        self.offline_timers[user_id] = asyncio.get_running_loop().call_later(grace, fire)

    async def _finish_offline(self, user_id: str) -> None:
        try:
            await self.db(presence.finish_offline, user_id)
        except Exception:
            logger.warning("marking user %s offline failed", user_id, exc_info=True)


def _transport_gone(conn: LocalConnection) -> bool:
    """Whether ``conn`` says its transport is gone; SSE streams, which end with their request, cannot tell."""
    check = getattr(conn, "transport_gone", None)
    try:
        return bool(check and check())
    except Exception:
        logger.exception("checking the transport of %s failed", conn.connection_id)
        return False
