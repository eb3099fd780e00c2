"""A socket's way out: every frame the server writes to one WebSocket, and how it closes.

The hub offers each publication to each socket (``offer``, synchronous); a
subscription holds what is offered while its replay runs; with ``?batch=1``
publications gather until the hub's tick (``flush_batch``). Under daphne a
frame goes straight to the socket when the wire takes it (``wire.DirectWire``),
else through the ASGI ``send``; what is held for a socket is bounded
(WEBSOCKET_SEND_BUFFER_LIMIT, 4500) and a write that fails closes it with 1011.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from channels.generic.websocket import AsyncWebsocketConsumer

from . import conf, protocol
from .protocol import CLOSE_INTERNAL_ERROR, encode
from .wire import SEND_GONE, DirectWire

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from .hub import Hub

logger = logging.getLogger(__name__)


class Subscription:
    __slots__ = ("last", "buffer")

    def __init__(self) -> None:
        self.last: int | None = None  # highest seq sent on this socket
        self.buffer: list[tuple[int, str]] | None = []  # pushes held while replaying


class OutboxConsumer(AsyncWebsocketConsumer):
    """The send side of ``RealtimeConsumer``; the consumer sets these up in ``connect``."""

    hub: Hub
    connection_id: str
    closed: bool
    subs: dict[str, Subscription]
    _wire: DirectWire | None
    _batch: list[str] | None  # None unless ``?batch=1``
    _batch_limit: int

    def _attach_wire(self) -> None:
        """Publications skip the ASGI send when daphne serves the socket (see wire.py)."""
        self._batch = None
        self._wire = DirectWire.for_send(self.base_send)
        if self._wire is not None:
            # What the fast path and Twisted hold for this socket is bounded (section 5).
            self._wire.limit = int(conf.get("WEBSOCKET_SEND_BUFFER_LIMIT"))
            self._wire.on_backed_up = self._backed_up

    def _start_batching(self) -> None:
        self._batch = []
        self._batch_limit = int(conf.get("WEBSOCKET_SEND_QUEUE_LIMIT"))

    async def send_message(self, message: dict) -> None:
        await self._send(encode(message))

    def _backed_up(self) -> None:
        """More than WEBSOCKET_SEND_BUFFER_LIMIT held for this socket: 4500. The
        close frame queues behind what is held; a client that does not finish the
        close within a second (autobahn's closeHandshakeTimeout) is aborted, and
        what was held is freed with its transport."""
        logger.info("connection %s reads too slowly: closing with 4500", self.connection_id)
        asyncio.ensure_future(self.close_with(protocol.CLOSE_SLOW_CONSUMER))

    async def _send(self, text: str) -> None:
        """Every ASGI write of this socket. A write that fails closes the socket
        (1011, so it resumes) instead of leaving a hole in what it received; a
        socket already closing (autobahn's ``Disconnected``: the client's close
        frame came in first) just stops: its ``websocket.disconnect`` follows."""
        wire = self._wire
        if wire is not None and wire.backed_up:
            return  # closing with 4500: nothing more is held for it
        try:
            await self.base_send({"type": "websocket.send", "text": text})
            if wire is not None:
                wire.check()
        except SEND_GONE:
            self.closed = True
        except Exception:
            logger.exception("write to connection %s failed; closing it with 1011", self.connection_id)
            await self._fail()

    async def push(self, channel: str, seq: int, text: str) -> None:
        pending = self.offer(channel, seq, text)
        if pending is not None:
            await pending

    def offer(self, channel: str, seq: int, text: str) -> Awaitable[None] | None:
        """The hub's delivery of a publication on a channel this socket holds.

        Synchronous (a coroutine per socket per publication was ~5% of the
        fan-out): returns None when done, or an awaitable for the rare rest
        (the ASGI send when the wire does not take the frame, a 4500 close).
        """
        sub = self.subs.get(channel)
        if sub is None or self.closed:
            return None
        if sub.buffer is not None:
            sub.buffer.append((seq, text))
            return None
        if sub.last is not None and seq <= sub.last:
            return None
        sub.last = seq
        batch = self._batch
        if batch is None:
            if self._wire is not None and self._wire.send_text(text):
                return None
            return self._send(text)
        batch.append(text)
        if len(batch) == 1:
            self.hub.flush_at_tick(self)
        elif len(batch) > self._batch_limit:
            self._batch = []
            return self.close_with(protocol.CLOSE_SLOW_CONSUMER)
        return None

    def flush_batch(self, frames: dict) -> None:
        """The hub's batch tick: send what gathered, right here when the wire takes it.

        What gathered goes out as few frames as fit under 1 MiB each (autobahn
        refuses a larger one). ``frames`` is shared by every socket of one tick:
        sockets holding the same publications (the common case) share them.
        """
        texts = self._batch
        if not texts or self.closed:
            return
        key = tuple(map(id, texts))
        built = frames.get(key)
        if built is None:
            # The texts are kept with the frames, so no id in a key is reused in this tick.
            built = frames[key] = (texts, protocol.batch_frames(texts))
        out = built[1]
        sent = 0
        if self._wire is not None:
            while sent < len(out) and self._wire.send_text(out[sent]):
                sent += 1
        self._batch = []
        if sent < len(out):
            asyncio.ensure_future(self._send_all(out[sent:]))

    async def _send_all(self, texts: list[str]) -> None:
        for text in texts:
            if self.closed:
                return
            await self._send(text)

    # --- closing ----------------------------------------------------------------

    async def close_with(self, code: int, error: dict | None = None, reason: str | None = None) -> None:
        """Close with a policy code and its reason text, after an optional ``error`` frame. Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        self._close_code = code  # what a client that never answers (1006) was closed with
        reason = self._close_reason = reason or protocol.CLOSE_REASONS.get(code, "")
        logger.debug("closing %s code=%s reason=%r", self.connection_id, code, reason)
        if error is not None:
            await self.send_message(error)
        await self.close(code, reason)

    async def _fail(self) -> None:
        """Close with 1011 (internal error): the RFC's code, which section 5 lists
        among those after which a client resumes. Safe when already closed."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._wire is not None:
                self._wire.close_internal_error()
            else:
                await self.base_send({"type": "websocket.close", "code": CLOSE_INTERNAL_ERROR})
        except Exception:
            logger.debug("closing %s with 1011 failed", self.connection_id, exc_info=True)

    def transport_gone(self) -> bool:
        """The hub's check for a socket whose consumer never released it (hub.py)."""
        return self._wire is not None and self._wire.gone()
