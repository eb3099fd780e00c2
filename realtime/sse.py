"""``GET /sse/?channels=...``: the server-sent events transport (docs/protocol.md section 13).

A plain async ASGI application, routed before Django (``routing.protocol_router``):
a stream is a coroutine on the server's event loop, never a thread. Each stream
is one more local connection of the process's hub (``hub.LocalConnection``):
counted toward WEBSOCKET_MAX_CONNECTIONS, recorded in presence, offered
publications by the hub like a socket, closed by it on shutdown (4503),
takeover (4409), revocation or an administrator (4403). Before the server ends
a stream it sends ``event: close`` with the WebSocket close code it stands for.

Whether a request opens a stream is ``sse_admission.admit``'s (access by
``policy.check``), history is ``publisher.history``'s: the opening of a stream
is the WebSocket consumer's ``subscribe`` with ``since`` for each channel,
done once. The channel set is fixed for the life of a stream; a client that
wants another set opens a new stream from its position.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid

from channels.db import database_sync_to_async

from . import conf, connections, events, presence, protocol
from .auth import seconds_left
from .channel_tracker import get_tracker
from .hub import get_hub
from .protocol import encode
from .publisher import history
from .sse_admission import Refused, admit, refuse
from .sse_wire import HTTPWire

logger = logging.getLogger(__name__)

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    # nginx buffers proxied responses unless told not to.
    (b"x-accel-buffering", b"no"),
]


async def sse_application(scope, receive, send) -> None:
    await EventStream(scope, receive, send).run()


class EventStream:
    """One ``text/event-stream`` response: a hub connection that only receives."""

    def __init__(self, scope, receive, send) -> None:
        self.scope, self.receive, self.send = scope, receive, send
        self.hub = get_hub()
        self.connection_id = uuid.uuid4().hex
        self.client_id = ""
        self.ip = ""
        self.headers: dict[str, str] = {}
        self.user = None
        self.user_id: str | None = None
        self.token_session: str | None = None  # the sign-in its token came from (revocation.py)
        self.closed = False
        self.registered = False
        self.started = False
        # channel -> the highest seq sent on this stream: the stream's position.
        self.positions: dict[str, int] = {}
        # Publications offered while the opening replay runs, sent after it.
        self.held: list[tuple[str, int, str]] | None = []
        self.wire = HTTPWire.for_send(send)
        self._ping_timer: asyncio.TimerHandle | None = None
        self._expiry: asyncio.TimerHandle | None = None
        # A stream cannot send anything: it is alive while it is open, so it is
        # always heard from (the hub's 4408 check and coalesced heartbeat read this).
        self.last_received = math.inf

    # --- the request's life ---------------------------------------------------

    async def run(self) -> None:
        try:
            admitted = await admit(self.scope, self.hub, self.connection_id)
        except Refused as exc:
            await refuse(self.send, exc)
            return
        self.client_id, self.ip, self.headers = admitted.client_id, admitted.ip, admitted.headers
        self.user, self.user_id, self.token_session = admitted.user, admitted.user_id, admitted.token_session
        if admitted.expires_at is not None:
            # As on a socket: the stream ends when its token expires (the client reopens with a fresh one).
            delay = max(0.0, seconds_left(admitted.expires_at))
            self._expiry = asyncio.get_running_loop().call_later(delay, self._token_expired)
        channels, since = admitted.channels, admitted.since
        try:
            await self._open(channels, since, admitted.presence)
            while True:  # until the client goes away or close_with ends the response
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    break
        except Exception:
            logger.exception("SSE stream %s failed", self.connection_id)
            await self.close_with(protocol.CLOSE_TRY_AGAIN)
        finally:
            await self._release()

    async def _open(self, channels: list[str], since: dict[str, int], presence_channels: list[str]) -> None:
        """Record the connection, start the response, replay from ``since``, then go live."""
        await database_sync_to_async(connections.connection_opened)(
            connection_id=self.connection_id,
            client_id=self.client_id,
            user_id=self.user_id,
            server_id=self.hub.server_id,
            ip=self.ip,
            user_agent=self.headers.get("user-agent", ""),
        )
        self.registered = True
        await self.hub.add(self)
        await self.send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        self.started = True
        for channel in channels:  # publications from here on are held until the replay is sent
            self.hub.subscribe(self, channel)
        loaded = await database_sync_to_async(_load)(channels, since, int(conf.get("REALTIME_HISTORY_SIZE")))
        if self.closed:
            return
        for channel, (_rows, _recovered, latest) in loaded.items():
            # A position past the channel's latest (another database?) counts as the latest.
            self.positions[channel] = min(since.get(channel, latest), latest)
        hello = protocol.connection_message(
            client_id=self.client_id,
            connection_id=self.connection_id,
            user=self.user,
            heartbeat_interval=conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"),
        )
        out = [events.retry(int(conf.get("REALTIME_SSE_RETRY"))), self._event(b"connection", encode(hello))]
        for channel, (rows, recovered, latest) in loaded.items():
            for seq, text in rows:
                if seq > self.positions[channel]:
                    self.positions[channel] = seq
                    out.append(self._event(events.event_type(text), text))
            # Everything up to ``latest`` is replayed now or gone from the store.
            self.positions[channel] = max(self.positions[channel], latest)
            self.hub.note_latest(channel, latest)
            if not recovered:
                out.append(self._event(b"recovery", encode({"channel": channel, "recovered": False})))
            if channel == presence.PRESENCE_CHANNEL:
                state = {"type": "presence_state", "channel": channel, "users": loaded.presence_users}
                out.append(self._event(b"presence_state", encode(state)))
        held, self.held = self.held or [], None
        await self._emit(b"".join(out))
        for channel, seq, text in held:
            pending = self.offer(channel, seq, text)
            if pending is not None:
                await pending
        await database_sync_to_async(connections.update_subscriptions)(self.connection_id, sorted(channels))
        for channel in presence_channels:  # the snapshot, then the diffs, as after a socket's subscribe
            await get_tracker(self.hub).join(self, channel)
        self._ping()

    async def _release(self) -> None:
        """However the stream ended: out of the hub, its row gone, its user offline after the grace."""
        self._stop_timers()
        if not self.registered:
            return
        self.registered = False
        self.hub.remove(self)
        if self.hub.stopping:
            return  # the hub clears this server's rows in one go
        await get_tracker(self.hub).connection_ended(self)  # no write unless it joined a channel's presence
        try:
            last_one = await database_sync_to_async(connections.connection_closed)(self.connection_id, self.user_id)
        except Exception:
            logger.warning("could not clear connection %s; pruning will", self.connection_id, exc_info=True)
            return
        if last_one and self.user_id is not None:
            self.hub.schedule_offline(self.user_id)

    # --- what the hub calls -----------------------------------------------------

    def offer(self, channel: str, seq: int, text: str):
        """A publication on one of this stream's channels; None when done, else an awaitable."""
        if self.closed:
            return None
        if self.held is not None:
            self.held.append((channel, seq, text))
            return None
        last = self.positions.get(channel)
        if last is None or seq <= last:
            return None
        self.positions[channel] = seq
        if len(self.positions) == 1:
            # The common stream of one channel: the same bytes for every such stream (built once).
            return self._write(events.single_channel_event(text, channel, seq))
        return self._write(self._event(events.event_type(text), text))

    async def close_with(self, code: int, error: dict | None = None, reason: str | None = None) -> None:
        """End the stream after ``event: close`` (and ``event: error``); safe to call twice.

        ``reason`` is what a socket would carry as its close reason (``shutting down``).
        """
        if self.closed:
            return
        self._stop_timers()
        if code == protocol.CLOSE_SLOW_CONSUMER and self.wire is not None:
            self.wire.abort()  # what it has not read is dropped, not flushed: its memory is freed now
            return
        if not self.started:
            return  # still opening: run() sees ``closed`` and ends
        body = b""
        if error is not None:
            body += events.event(b"error", encode(error), None)
        close = {"type": "close", "code": code}
        if reason:
            close["reason"] = reason
        body += events.event(b"close", encode(close), None)
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    def push_text(self, text: str):
        """A message that is no publication (channel presence, a signal): an event of its
        type, with the stream's position unchanged. None when done, else an awaitable."""
        if self.closed or self.held is not None:
            return None  # not open yet: the join's snapshot comes after the replay
        return self._write(self._event(events.event_type(text), text))

    def flush_batch(self, frames: dict) -> None:
        """Streams never ask for the batch tick (``?batch=1`` is a socket option)."""

    # --- writing ----------------------------------------------------------------

    def _event(self, kind: bytes, text: str) -> bytes:
        return events.event(kind, text, events.format_position(self.positions))

    async def _emit(self, data: bytes) -> None:
        pending = self._write(data)
        if pending is not None:
            await pending

    def _write(self, data: bytes):
        """Send ``data`` now when daphne serves us (no coroutine per push), else return the ASGI send."""
        if self.wire is None:
            return self.send({"type": "http.response.body", "body": data, "more_body": True})
        # Usually nothing stays buffered (the kernel took it all): the setting is read only when something did.
        wrote = self.wire.write(data)
        held = self.wire.buffered() if wrote else 0
        if held and held > int(conf.get("WEBSOCKET_SEND_BUFFER_LIMIT")):
            logger.info("SSE stream %s reads too slowly: closed", self.connection_id)
            return self.close_with(protocol.CLOSE_SLOW_CONSUMER)
        return None

    def _stop_timers(self) -> None:
        self.closed = True
        for timer in (self._ping_timer, self._expiry):
            if timer is not None:
                timer.cancel()

    def _ping(self) -> None:
        """``: ping`` every REALTIME_SSE_PING_INTERVAL: proxies close streams that look idle."""
        if self.closed:
            return
        interval = float(conf.get("REALTIME_SSE_PING_INTERVAL"))
        self._ping_timer = asyncio.get_running_loop().call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        if self.closed:
            return
        pending = self._write(events.comment("ping"))
        if pending is not None:
            asyncio.ensure_future(pending)
        self._ping()

    def _token_expired(self) -> None:
        error = protocol.error(protocol.E_TOKEN_EXPIRED, "token has expired")
        asyncio.ensure_future(self.close_with(protocol.CLOSE_TOKEN_INVALID, error))


class _Loaded(dict):
    presence_users: list = []


def _load(channels: list[str], since: dict[str, int], size: int) -> _Loaded:
    """Each channel's replay from its position (or none: live from now), in one database hop."""
    out = _Loaded()
    for channel in channels:
        out[channel] = history(channel, since.get(channel, 2**62), size)
    if presence.PRESENCE_CHANNEL in channels:
        out.presence_users = presence.presence_state()
    return out
