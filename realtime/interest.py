"""Routing by interest across server processes, with a cross-process channel layer (Redis).

A publication is sent to the layer group of its channel (``channel_group``),
and a server process is a member of that group only while it has a local
subscriber of the channel. With 50 servers, an ``issue:<id>`` followed on one
of them costs one layer message instead of 50. Control messages (``rt.close``,
``rt.takeover``) still reach every process through ``rt.fanout``.

Joining is asynchronous: between a first local subscribe and its
``group_add`` a publication can pass the process by. So every join ends with
a read of the channel from the store (``on_joined``: the hub's poller, at
once), and the periodic poller covers whatever else the layer loses.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

# channels_redis allows ASCII letters, digits, "-", "_", "." and fewer than 100 characters.
_PLAIN = re.compile(r"[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?")


def channel_group(channel: str) -> str:
    """The layer group of a protocol channel: ``issue:123`` -> ``rt.issue.123``.

    A channel with other characters (or too long) gets ``rt..<hash>``: the
    double dot cannot come out of the plain form, so the two never collide.
    """
    if _PLAIN.fullmatch(channel) and len(channel) < 90:
        return "rt." + channel.replace(":", ".")
    return "rt.." + hashlib.blake2b(channel.encode(), digest_size=16).hexdigest()


class Interest:
    """Keeps this process's group memberships in step with its locally subscribed channels.

    One task applies the changes in order (a subscribe then an unsubscribe of
    the same channel never ends joined), on the hub's loop.
    """

    def __init__(self, layer, on_joined: Callable[[str], None], on_error: Callable[[Exception], object]) -> None:
        self.layer = layer
        self.on_joined = on_joined
        self.on_error = on_error
        self.layer_channel: str | None = None
        self.wanted: set[str] = set()
        self.joined: set[str] = set()
        self.pending: asyncio.Queue[str] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    def want(self, channel: str) -> None:
        self.wanted.add(channel)
        self._schedule(channel)

    def drop(self, channel: str) -> None:
        self.wanted.discard(channel)
        self._schedule(channel)

    def _schedule(self, channel: str) -> None:
        self.pending.put_nowait(channel)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._apply())

    async def connected(self, layer_channel: str, channels: Iterable[str]) -> None:
        """The layer is (again) reachable as ``layer_channel``: join every wanted group.

        Also run every 600 s: channels_redis forgets group members after
        ``group_expiry`` (a day by default).
        """
        self.layer_channel = layer_channel
        self.joined.clear()
        self.wanted = set(channels)
        for channel in list(self.wanted):
            self._schedule(channel)

    def disconnected(self) -> None:
        self.layer_channel = None
        self.joined.clear()

    async def _apply(self) -> None:
        while not self.pending.empty():
            channel = self.pending.get_nowait()
            if self.layer_channel is None:
                continue  # connected() joins what is wanted once the layer is back
            group = channel_group(channel)
            try:
                if channel in self.wanted and channel not in self.joined:
                    await self.layer.group_add(group, self.layer_channel)
                    self.joined.add(channel)
                    self.on_joined(channel)
                elif channel not in self.wanted and channel in self.joined:
                    self.joined.discard(channel)
                    await self.layer.group_discard(group, self.layer_channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the layer loop reconnects and calls connected()
                self.on_error(exc)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
