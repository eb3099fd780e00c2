"""The WebSocket endpoint ``/ws/<client_id>/``: translates frames, delegates the rest.

Frames are parsed by ``protocol.parse_frame`` (never by Channels' JSON consumer,
which dies on bad input), access is decided by ``policy.check``, history and
publication by ``publisher``, presence by ``presence``; delivery to this socket
is done by the process's hub, which calls ``push``. Handlers run one at a time
per connection; the hub's pushes may interleave with a handler's awaits, which
is why a subscription buffers pushes until its replay is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from urllib.parse import parse_qs, urlsplit

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http.request import split_domain_port, validate_host

from . import conf, connections, counters, policy, presence, protocol
from .auth import AuthFailed, authenticate, seconds_left
from .collab import CollabMixin
from .hub import get_hub
from .protocol import CLOSE_INTERNAL_ERROR, ProtocolError, encode
from .publisher import history
from .wire import SEND_GONE, DirectWire

logger = logging.getLogger(__name__)

# The strikes window for 4429: a client that has more than 2 x burst messages
# dropped within these seconds is not going to slow down by itself.
RATE_STRIKE_WINDOW = 10.0


class Subscription:
    __slots__ = ("last", "buffer")

    def __init__(self) -> None:
        self.last: int | None = None  # highest seq sent on this socket
        self.buffer: list[tuple[int, str]] | None = []  # pushes held while replaying


def origin_allowed(origin: str | None) -> bool:
    """No Origin (a non-browser client) is allowed; a browser's must be on the allow-list."""
    if origin is None:
        return True
    allowed = conf.allowed_origins()
    if "*" in allowed or origin in allowed:
        return True
    host = urlsplit(origin).netloc
    if not host:
        return False
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, [a for a in allowed if "://" not in a])


# Origins already warned about: a misconfigured ALLOWED_HOSTS says so once per
# origin at WARNING (bounded, so a flood of made-up origins cannot grow it).
_warned_origins: set[str] = set()


def log_refused_origin(origin: str | None) -> None:
    if origin is None or origin in _warned_origins or len(_warned_origins) >= 256:
        logger.debug("refused handshake from origin %r", origin)
        return
    _warned_origins.add(origin)
    logger.warning(
        "refused a browser's WebSocket handshake from origin %r: add its host to ALLOWED_HOSTS "
        "or the origin to WEBSOCKET_ALLOWED_ORIGINS",
        origin,
    )


class RealtimeConsumer(CollabMixin, AsyncWebsocketConsumer):
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
        self.user_id: str | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._wire = None
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
        self.token_session: str | None = None  # the sign-in its token came from (revocation.py)
        self.subs: dict[str, Subscription] = {}
        self.last_received = time.monotonic()
        self._batch: list[str] | None = None
        # Publications skip the ASGI send when daphne serves the socket (see wire.py).
        self._wire = DirectWire.for_send(self.base_send)
        if self._wire is not None:
            # What the fast path and Twisted hold for this socket is bounded (section 5).
            self._wire.limit = int(conf.get("WEBSOCKET_SEND_BUFFER_LIMIT"))
            self._wire.on_backed_up = self._backed_up
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
            self._batch = []
            self._batch_limit = int(conf.get("WEBSOCKET_SEND_QUEUE_LIMIT"))
        token = query.get("token", [""])[0]
        if token:
            try:
                auth = await database_sync_to_async(authenticate)(token)
            except AuthFailed as exc:
                await self.accept()
                await self.close_with(protocol.CLOSE_TOKEN_INVALID, protocol.error(exc.code, exc.message))
                return
            self._set_user(auth)

        await self.accept()
        try:
            await database_sync_to_async(connections.connection_opened)(
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

    def _set_user(self, auth) -> None:
        self.user = auth.user
        self.user_id = str(auth.user.pk)
        self.token_session = auth.session
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(0.0, seconds_left(auth.expires_at)), lambda: asyncio.ensure_future(self._token_expired())
        )

    async def _token_expired(self) -> None:
        await self.close_with(
            protocol.CLOSE_TOKEN_INVALID, protocol.error(protocol.E_TOKEN_EXPIRED, "token has expired")
        )

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

    async def disconnect(self, code) -> None:
        logger.debug("closed %s code=%s user=%s", self.connection_id, code, self.user_id)
        code = getattr(self, "_close_code", None) or code
        counters.closed(
            code,
            getattr(self, "_close_reason", ""),
            self.connection_id,
            self.user_id,
            self.client_id,
            getattr(self.user, "username", None),
        )
        await self.release()

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
        self.registered = False
        self.hub.remove(self)
        if self.hub.stopping:
            return  # the hub clears this server's rows in one go
        # Started, not awaited: like the row's release below, it finishes even
        # if daphne cancels this handler (channel_tracker.connection_ended).
        asyncio.ensure_future(self._presence_release())
        # Shielded: daphne cancels a consumer that is slow to finish, and the
        # row must go even then (the database thread finishes the write).
        done = asyncio.ensure_future(
            database_sync_to_async(connections.connection_closed)(self.connection_id, self.user_id)
        )
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

    def transport_gone(self) -> bool:
        """The hub's check for a socket whose consumer never released it (hub.py)."""
        return self._wire is not None and self._wire.gone()

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

    # --- sending --------------------------------------------------------------

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

    def offer(self, channel: str, seq: int, text: str):
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

    # --- receiving ------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if self.closed:
            return
        self.last_received = time.monotonic()
        self.hub.stats["messages_in"] += 1
        size = len(text_data) if text_data is not None else len(bytes_data or b"")
        limit = int(conf.get("WEBSOCKET_MAX_MESSAGE_SIZE"))
        if size > limit or (text_data is not None and size * 4 > limit and len(text_data.encode()) > limit):
            await self.close_with(protocol.CLOSE_TOO_LARGE)
            return
        if not self._take_rate_token():
            return
        ref = None
        try:
            msg = protocol.parse_frame(text_data)
            ref = msg.ref
            await getattr(self, f"on_{msg.type}")(msg)
        except ProtocolError as exc:
            logger.debug("error %s to %s: %s (channel=%s)", exc.code, self.connection_id, exc.message, exc.channel)
            counters.error_sent(exc.code)
            await self.send_message(protocol.error(exc.code, exc.message, ref=exc.ref or ref, channel=exc.channel))

    def _take_rate_token(self) -> bool:
        """A token bucket: WEBSOCKET_MESSAGE_RATE a second, bursts up to twice that."""
        rate = float(conf.get("WEBSOCKET_MESSAGE_RATE"))
        now = time.monotonic()
        tokens, last, strikes, window = getattr(self, "_bucket", (2 * rate, now, 0, now))
        tokens = min(2 * rate, tokens + (now - last) * rate)
        if now - window > RATE_STRIKE_WINDOW:
            strikes, window = 0, now
        if tokens >= 1:
            self._bucket = (tokens - 1, now, strikes, window)
            return True
        strikes += 1
        self._bucket = (tokens, now, strikes, window)
        counters.rate_limited(self.connection_id, self.user_id, self.client_id, getattr(self.user, "username", None))
        if strikes > 4 * rate:
            asyncio.ensure_future(self.close_with(protocol.CLOSE_RATE_LIMITED))
        else:
            counters.error_sent(protocol.E_RATE_LIMITED)
            asyncio.ensure_future(
                self.send_message(protocol.error(protocol.E_RATE_LIMITED, "too many messages; this one was dropped"))
            )
        return False

    async def on_ping(self, msg) -> None:
        await self.send_message(
            protocol.with_ref({"type": "pong", "timestamp": msg.timestamp, "server_time": protocol.now_iso()}, msg.ref)
        )

    async def on_subscribe(self, msg) -> None:
        name = msg.channel
        sub = self.subs.get(name)
        if sub is None and len(self.subs) >= int(conf.get("WEBSOCKET_MAX_SUBSCRIPTIONS")):
            raise ProtocolError(protocol.E_TOO_MANY_SUBSCRIPTIONS, "too many subscriptions", ref=msg.ref, channel=name)
        await self._check(name, msg.ref)
        if msg.presence:
            self._check_presence_kind(msg)
        if sub is None:
            sub = self.subs[name] = Subscription()
            self.hub.subscribe(self, name)
        elif sub.buffer is None:
            sub.buffer = []
        size = int(conf.get("REALTIME_HISTORY_SIZE"))
        since = msg.since
        try:
            rows, recovered, latest = await database_sync_to_async(history)(
                name, since if since is not None else 2**62, size
            )
        except Exception:
            self._drop(name)
            raise
        # A stored row too large for any frame (stored before
        # REALTIME_MAX_PUBLICATION_SIZE) cannot be replayed: skip it, and say
        # ``recovered: false`` since this client can never have that message.
        fitting = [row for row in rows if protocol.utf8_len(row[1]) <= protocol.MAX_FRAME_SIZE]
        if len(fitting) < len(rows):
            logger.warning("%s: %d stored rows too large to replay, skipped", name, len(rows) - len(fitting))
            rows, recovered = fitting, False
        logger.debug(
            "subscribed %s %s since=%s latest=%s replay=%d recovered=%s",
            name, self.connection_id, since, latest, len(rows), recovered,
        )  # fmt: skip
        await self.send_message(
            protocol.with_ref({"type": "subscribed", "channel": name, "seq": latest, "recovered": recovered}, msg.ref)
        )
        last = sub.last or 0
        replayed = 0
        for seq, text in rows:
            if seq > last:
                await self._send(text)
                last = seq
                replayed += 1
        counters.replayed(replayed)
        if name == presence.PRESENCE_CHANNEL:
            users = await database_sync_to_async(presence.presence_state)()
            await self.send_message({"type": "presence_state", "channel": name, "users": users})
        # Everything up to ``latest`` is either replayed now or gone from the store.
        last = max(last, latest)
        self.hub.note_latest(name, latest)
        buffered, sub.buffer = sub.buffer or [], None
        sub.last = last
        for seq, text in buffered:
            await self.push(name, seq, text)
        if msg.presence:  # before the subscriptions column's write: the others hear of it sooner
            await self._presence_join(name)
        await self._save_subscriptions()

    async def on_unsubscribe(self, msg) -> None:
        name = protocol.parse_channel(msg.channel).name
        if name in self.subs:
            self._drop(name)
            await self._save_subscriptions()
            await self._presence_leave(name)
        logger.debug("unsubscribed %s %s", name, self.connection_id)
        await self.send_message(protocol.with_ref({"type": "unsubscribed", "channel": name}, msg.ref))

    def _drop(self, name: str) -> None:
        self.subs.pop(name, None)
        self.hub.unsubscribe(self, name)

    async def on_history(self, msg) -> None:
        name = msg.channel
        channel = await self._check(name, msg.ref)
        try:
            policy.check_history(channel)
        except ProtocolError as exc:
            exc.ref = msg.ref
            raise
        rows, recovered, _latest = await database_sync_to_async(history)(name, msg.since, msg.limit)
        # At most one frame's worth (1 MiB), ``more: true`` when it stopped early.
        text, taken, _skipped = protocol.history_reply(name, [t for _, t in rows], recovered, msg.ref)
        counters.replayed(taken)
        await self._send(text)

    async def on_presence(self, msg) -> None:
        if self.user_id is None:
            raise ProtocolError(protocol.E_FORBIDDEN, "sign in to set presence", ref=msg.ref)
        if msg.channel is not None:
            await self._channel_activity(msg)
            return
        await database_sync_to_async(presence.set_status)(self.user_id, msg.status, msg.activity)
        await self.send_message(
            protocol.with_ref({"type": "presence_ack", "status": msg.status, "activity": msg.activity}, msg.ref)
        )

    async def on_auth(self, msg) -> None:
        try:
            auth = await database_sync_to_async(authenticate)(msg.token)
        except AuthFailed as exc:
            await self.close_with(protocol.CLOSE_TOKEN_INVALID, protocol.error(exc.code, exc.message, ref=msg.ref))
            return
        if self.user_id is not None and str(auth.user.pk) != self.user_id:
            await self.close_with(
                protocol.CLOSE_TOKEN_INVALID,
                protocol.error(protocol.E_TOKEN_INVALID, "token is for another user", ref=msg.ref),
            )
            return
        upgrading = self.user_id is None
        self._set_user(auth)
        if upgrading:
            await database_sync_to_async(connections.connection_authenticated)(self.connection_id, self.user_id)
            await self.hub.claim_client_id(self)
        await self.send_message(
            protocol.with_ref({"type": "authenticated", "user": protocol.user_dict(self.user)}, msg.ref)
        )

    async def _check(self, name: str, ref: str | None) -> protocol.Channel:
        try:
            return await database_sync_to_async(policy.check)(self.user, name)
        except ProtocolError as exc:
            exc.ref = ref
            raise

    async def _save_subscriptions(self) -> None:
        await database_sync_to_async(connections.update_subscriptions)(self.connection_id, sorted(self.subs))
