"""What a socket's frames do: ping, subscribe, unsubscribe, history, presence, auth.

Frames are parsed by ``protocol.parse_frame`` (never by Channels' JSON consumer,
which dies on bad input), access is decided by ``policy.check``, history by
``publisher``, presence by ``presence``; channel presence and signals are
``CollabMixin``'s. Handlers run one at a time per connection; the hub's pushes
may interleave with a handler's awaits, which is why a subscription holds what
is offered until its replay is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async

from . import conf, connections, counters, gathered, policy, presence, protocol, replay
from .auth import AuthFailed, authenticate, seconds_left
from .collab import CollabMixin
from .outbox import OutboxConsumer, Subscription
from .protocol import ProtocolError
from .ratelimit import TokenBucket

logger = logging.getLogger(__name__)

# The strikes window for 4429: a client that has more than 2 x burst messages
# dropped within these seconds is not going to slow down by itself.
RATE_STRIKE_WINDOW = 10.0


class FrameHandlers(CollabMixin, OutboxConsumer):
    """The receive side of ``RealtimeConsumer``: one ``on_<type>`` per client frame."""

    client_id: str
    user: Any  # the signed-in user, or None
    user_id: str | None
    token_session: str | None  # the sign-in its token came from (revocation.py)
    _saved_subscriptions: tuple[str, ...] = ()  # what its Connection row lists (created with none)
    last_received: float
    _expiry: asyncio.TimerHandle | None
    _bucket: TokenBucket | None = None  # made at the first frame
    _strikes: int  # frames dropped in the window that started at _strike_window
    _strike_window: float

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
        """WEBSOCKET_MESSAGE_RATE a second, bursts up to twice that; a frame over it is
        dropped with an error, and more than 4 x rate dropped within RATE_STRIKE_WINDOW is 4429."""
        now = time.monotonic()
        bucket = self._bucket
        if bucket is None:  # at the first frame: its window starts then
            rate = float(conf.get("WEBSOCKET_MESSAGE_RATE"))
            bucket = self._bucket = TokenBucket(rate, 2 * rate, now)
            self._strikes, self._strike_window = 0, now
        if now - self._strike_window > RATE_STRIKE_WINDOW:
            self._strikes, self._strike_window = 0, now
        if bucket.take(now):
            return True
        self._strikes += 1
        counters.rate_limited(self.connection_id, self.user_id, self.client_id, getattr(self.user, "username", None))
        if self._strikes > 4 * bucket.rate:
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
        if not self.registered:
            # Released while the check waited (the hub's reaper: its socket went):
            # subscribing now would leave a dead entry among the channel's subscribers.
            return
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
            # Shared with the subscribes of this channel that come at the same time (a restart's storm).
            rows, recovered, latest = await replay.history(name, since if since is not None else 2**62, size)
        except Exception:
            self._drop(name)
            raise
        if not self.registered:
            return  # released while the history waited (see above)
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
        if not self.registered:
            return  # released while the replay was written
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
        rows, recovered, _latest = await replay.history(name, msg.since, msg.limit)
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

    def _set_user(self, auth) -> None:
        """Signed in (at the handshake or by ``auth``): the socket closes when the token expires."""
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

    async def _check(self, name: str, ref: str | None) -> protocol.Channel:
        try:
            return await database_sync_to_async(policy.check)(self.user, name)
        except ProtocolError as exc:
            exc.ref = ref
            raise

    async def _save_subscriptions(self) -> None:
        """The ``Connection`` row's channels, written only when they changed. A channel
        held with channel presence is left out: its ``ChannelMember`` row records it,
        so a join or a leave costs that one write (``realtime.subscriptions``)."""
        channels = tuple(self._recorded_subscriptions())
        if channels != self._saved_subscriptions:
            await gathered.update_subscriptions(self.connection_id, list(channels))
            self._saved_subscriptions = channels
