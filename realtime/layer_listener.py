"""This process's end of a cross-process channel layer (Redis): one member of
``rt.fanout`` for the whole process, and the hub loop's sends (``group_send``).

Each message received goes to ``dispatch``, handed in by the hub (the rt.*
kinds are realtime/fanout.py's). While the layer is away the poller keeps
delivering from the store; ``run`` rejoins by itself when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from .fanout import FANOUT_GROUP, LAYER
from .interest import Interest

logger = logging.getLogger("realtime.hub")  # a part of the hub: its lines keep the hub's name

# channels_redis forgets group members after group_expiry (a day by default): rejoin well before that.
REJOIN_PERIOD = 600.0


async def group_send(layer: Any, group: str, message: dict) -> None:
    """``layer.group_send`` that never raises: a failure counts towards the layer's outage."""
    try:
        await layer.group_send(group, message)
    except Exception as exc:
        LAYER.failed(exc)
    else:
        LAYER.succeeded()


class LayerListener:
    def __init__(
        self,
        layer: Any,
        interest: Interest,
        subscribed: Collection[str],
        dispatch: Callable[[dict], Awaitable[None]],
    ) -> None:
        self.layer = layer
        self.interest = interest
        self.subscribed = subscribed
        self.dispatch = dispatch

    async def run(self) -> None:
        channel_name = None
        rejoin_at = 0.0
        while True:
            try:
                if channel_name is None or time.monotonic() > rejoin_at:
                    channel_name = channel_name or await self.layer.new_channel()
                    await self.layer.group_add(FANOUT_GROUP, channel_name)
                    await self.interest.connected(channel_name, list(self.subscribed))
                    rejoin_at = time.monotonic() + REJOIN_PERIOD
                    LAYER.succeeded()
                message = await self.layer.receive(channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis went away: the poller keeps delivering from the store; rejoin when
                # back, with the same channel, so that a blip leaves no dead member in the
                # group (each one would get a copy of every publication until it expires).
                rejoin_at = 0.0
                self.interest.disconnected()
                await asyncio.sleep(LAYER.failed(exc))
                continue
            try:
                await self.dispatch(message)
            except Exception:
                # One message this process cannot handle (another version's shape, a handler's
                # bug) must not end the listener: every later message would be lost with it.
                logger.exception("handling layer message %s failed", message.get("type"))
