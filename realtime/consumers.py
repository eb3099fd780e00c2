"""The WebSocket endpoint ``/ws/<client_id>/``: a connection's life, from handshake to release.

The consumer is built in layers, each a module of its own: ``outbox`` (what
is written to the socket: the hub's offers, batching, the send buffer's bound,
closing), ``handlers`` (what the client's frames do) and this module (the
handshake's checks, recording the connection, giving back what it held).
Delivery to this socket is done by the process's hub, which calls ``offer``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer

from . import conf, counters, gathered, protocol
from .auth import AuthFailed
from .handlers import FrameHandlers
from .hub import get_hub
from .origins import log_refused_origin, origin_allowed

__all__ = ["RealtimeConsumer", "origin_allowed", "log_refused_origin"]

logger = logging.getLogger(__name__)

# RFC 6455's code for a connection that ended without a close frame: never
# sent, only recorded (what daphne reports for a reset).
CLOSE_ABNORMAL = 1006


class RealtimeConsumer(FrameHandlers):
    # No channel-layer channel per socket: the hub receives one layer message per
    # process and writes to local sockets itself (see hub.py).
    channel_layer_alias = "__realtime_no_layer__"

    async def __call__(self, scope, receive, send):
        """Channels' loop without its per-socket extras: no layer channel, and
        messages read straight from ``receive`` instead of through a task per
        message (``await_many_dispatch``), which saves ~1 KB a socket.

        Whatever ends it (the client's close, a reset, an exception in a handler,
        a cancellation), ``release`` runs: an exception used to skip
        ``disconnect()`` and leak the hub entry, the row and presence for good.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        self.closed = False
        self.registered = False
        self.connection_id = uuid.uuid4().hex
        self.user_id = None
        self._expiry = None
        self._wire = None
        self._close_counted = False
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        except Exception:
            # A bug or a fault (a database error past its timeout): the state of
            # this connection is unknown, so it ends with 1011 and the client
            # resumes with ``since`` (section 5); everyone else goes on.
            logger.exception("connection %s failed; closing it with 1011", self.connection_id)
            self._count_close(protocol.CLOSE_INTERNAL_ERROR)
            await self._fail()
        finally:
            await self.release()

    async def dispatch(self, message):
        # Channels 4.3 hops to the database thread (aclose_old_connections) before
        # every handler; frames that need the database go through
        # database_sync_to_async, which closes stale connections itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- opening and closing ------------------------------------------------

    async def connect(self) -> None:
        self.hub = get_hub()
        self.client_id = self.scope["url_route"]["kwargs"].get("client_id", "")
        self.user = None
        self.token_session = None
        self.subs = {}
        self.last_received = time.monotonic()
        self._attach_wire()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self.scope.get("headers", [])}

        # Refusals before accept() are HTTP 403 and record nothing.
        if not conf.get("WEBSOCKET_ENABLED") or not protocol.valid_client_id(self.client_id):
            await self.close()
            return
        if not origin_allowed(headers.get("origin")):
            log_refused_origin(headers.get("origin"))
            await self.close()
            return

        await self.hub.ensure_started(handle_signals="server" in self.scope)
        client = self.scope.get("client") or ("", 0)
        ip = client[0] or ""
        if self.hub.stopping or not self.hub.allow_connect_attempt(ip) or self.hub.at_capacity():
            reason = (
                protocol.REASON_SHUTTING_DOWN
                if self.hub.stopping
                else protocol.REASON_AT_CAPACITY
                if self.hub.at_capacity()
                else protocol.REASON_CONNECTING_TOO_FAST
            )
            await self.accept()
            await self.close_with(protocol.CLOSE_TRY_AGAIN, reason=reason)
            return

        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("batch", [""])[0] in ("1", "true"):
            self._start_batching()
        token = query.get("token", [""])[0]
        if token:
            try:
                auth = await gathered.authenticate(token)
            except AuthFailed as exc:
                await self.accept()
                await self.close_with(protocol.CLOSE_TOKEN_INVALID, protocol.error(exc.code, exc.message))
                return
            self._set_user(auth)

        await self.accept()
        try:
            await gathered.connection_opened(
                connection_id=self.connection_id,
                client_id=self.client_id,
                user_id=self.user_id,
                server_id=self.hub.server_id,
                ip=ip,
                user_agent=headers.get("user-agent", ""),
            )
        except Exception:
            logger.exception("could not record connection %s", self.connection_id)
            await self.close_with(protocol.CLOSE_TRY_AGAIN)
            return
        self.registered = True
        await self.hub.add(self)
        await self.send_message(
            protocol.connection_message(
                client_id=self.client_id,
                connection_id=self.connection_id,
                user=self.user,
                heartbeat_interval=conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"),
            )
        )
        if self._wire is not None:
            self._wire.release_handshake()
        logger.debug("connected %s client=%s user=%s", self.connection_id, self.client_id, self.user_id)

    async def disconnect(self, code) -> None:
        logger.debug("closed %s code=%s user=%s", self.connection_id, code, self.user_id)
        self._count_close(code)
        await self.release()

    def _count_close(self, code, reason: str = "") -> None:
        """Count this connection's end once (metrics, the console's recent closes),
        on whichever path sees it first: its disconnect, a crash, or the hub's
        reaper releasing a socket that went while this consumer was stuck."""
        if self._close_counted:
            return
        self._close_counted = True
        counters.closed(
            getattr(self, "_close_code", None) or code,
            getattr(self, "_close_reason", "") or reason,
            self.connection_id,
            self.user_id,
            self.client_id,
            getattr(self.user, "username", None),
        )

    async def release(self) -> None:
        """Give back what this connection holds: its timer, its hub entry (its
        place in the connection count), its row and its user's presence.
        Idempotent, and safe on every exit path, cancellation included; the
        hub also calls it for a socket that is gone while this consumer is stuck."""
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        if not self.registered:
            return
        # Not counted yet: it ended without this consumer seeing how (the reaper,
        # a cancellation), so without a close frame.
        self._count_close(CLOSE_ABNORMAL, "socket gone")
        self.registered = False
        self.hub.remove(self)
        if self.hub.stopping:
            return  # the hub clears this server's rows in one go
        # Started, not awaited: like the row's release below, it finishes even
        # if daphne cancels this handler (channel_tracker.connection_ended).
        asyncio.ensure_future(self._presence_release())
        # Shielded: daphne cancels a consumer that is slow to finish, and the
        # row must go even then (the database thread finishes the write).
        done = asyncio.ensure_future(gathered.connection_closed(self.connection_id, self.user_id))
        try:
            last_one = await asyncio.shield(done)
        except asyncio.CancelledError:
            done.add_done_callback(self._after_release)
            raise
        except Exception:
            logger.warning("could not clear connection %s; pruning will", self.connection_id, exc_info=True)
            return
        if last_one and self.user_id is not None:
            self.hub.schedule_offline(self.user_id)

    def _after_release(self, done: asyncio.Future) -> None:
        if not done.cancelled() and done.exception() is None and done.result() and self.user_id is not None:
            self.hub.schedule_offline(self.user_id)
