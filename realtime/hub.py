"""The per-process delivery hub: one per server process, owning its local sockets.

Why it exists (bench/README.md has the figures): the textbook Channels pattern
(a consumer per socket in a layer group, ``group_send``, ``send_json`` per
recipient) costs one layer message, one JSON encoding and one consumer wake-up
per recipient. Here each publication reaches a process once (a local hand-off,
one channel-layer message to the channel's group, which only processes with
local subscribers join (realtime/interest.py), or a doorbell and the database
poller), is encoded once by the publisher, and the hub writes that text to
every local subscriber itself. Consumers hold no channel-layer channel of their own.

The rule a caller must know: everything here runs on the event loop of the
server process; other threads hand publications in with ``deliver_threadsafe``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from . import conf, connections, counters, doorbell, fanout, instances, ops, presence, publisher, revocation
from .fanout import FANOUT_GROUP, LAYER, close_connections_threadsafe  # noqa: F401 (importable from here)
from .interest import Interest
from .protocol import (
    CLOSE_DISCONNECTED,
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_REPLACED,
    CLOSE_TRY_AGAIN,
    REASON_SHUTTING_DOWN,
)
from .ratelimit import KeyedTokenBuckets

logger = logging.getLogger(__name__)

# The layer's group, its health and its rt.* messages are realtime/fanout.py's;
# FANOUT_GROUP, LAYER and close_connections_threadsafe stay importable from here.
# Seconds between automatic history prunes (REALTIME_HISTORY_SIZE / _TTL) per process.
HISTORY_PRUNE_PERIOD = 300.0


class LocalConnection(Protocol):
    connection_id: str
    client_id: str
    user_id: str | None
    last_received: float
    # Optional: the token session it authenticated with (revocation.py reads it with getattr).
    # token_session: str | None

    def offer(self, channel: str, seq: int, text: str) -> Awaitable | None: ...

    async def close_with(self, code: int, error: dict | None = None, reason: str | None = None) -> None: ...

    def flush_batch(self, frames: dict) -> None: ...

    # Optional (a WebSocket consumer has them): ``transport_gone() -> bool`` and
    # ``async release()``, for the reap loop.


class Hub:
    """Local connections, their subscriptions, and in-order delivery of publications."""

    def __init__(self) -> None:
        self.server_id = uuid.uuid4().hex
        self.loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Future | None = None
        self.connections: dict[str, LocalConnection] = {}
        self.by_client: dict[tuple[str, str], LocalConnection] = {}
        self.subscribers: dict[str, set[LocalConnection]] = defaultdict(set)
        # The highest seq this process has delivered per channel: drops repeats
        # (the same publication arriving locally, by the layer and by the poller).
        self.delivered_seq: dict[str, int] = {}
        self.queue: asyncio.Queue | None = None
        self.tasks: list[asyncio.Task] = []
        self.stopping = False
        self.next_history_prune = 0.0
        self.layer = None
        self.layer_is_local = True
        self.connect_attempts: KeyedTokenBuckets | None = None
        self.offline_timers: dict[str, asyncio.TimerHandle] = {}
        # layer_publications: rt.publish messages the layer brought (interest routing, realtime/interest.py).
        self.stats = {"messages_in": 0, "messages_out": 0, "publications": 0, "layer_publications": 0}
        self.interest: Interest | None = None
        # ?batch=1 sockets with publications waiting, and the one timer of their tick.
        self.batch_due: list[LocalConnection] = []
        self.batch_timer: asyncio.TimerHandle | None = None
        # Channels another process rang the doorbell for (realtime/doorbell.py):
        # the poller reads them at once instead of at its next interval.
        self.rung: set[str] = set()
        self.rang: asyncio.Event | None = None
        self.doorbell: doorbell.Listener | None = None
        # Background database work runs on a thread of its own, so a slow poll or
        # prune never stalls the shared thread that consumers' ORM calls use.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime-hub")
        # Extensions (channel_tracker.py): layer message types they handle, and
        # database work for a clean shutdown, called with this server's id.
        self.layer_handlers: dict[str, Callable[[dict], Awaitable[None]]] = {}
        self.shutdown_hooks: list[Callable[[str], object]] = []

    # --- lifecycle -------------------------------------------------------

    @property
    def started(self) -> bool:
        return self.loop is not None

    async def ensure_started(self, *, handle_signals: bool = False) -> None:
        """Start once; every caller waits until the server row exists, because
        after a restart all clients reconnect at once and their Connection rows
        point at it."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start(handle_signals))
        try:
            await asyncio.shield(self._starting)
        except Exception:
            self._starting = None  # the next connection tries again
            raise

    async def _start(self, handle_signals: bool) -> None:
        loop = asyncio.get_running_loop()
        self.queue = asyncio.Queue()
        self.layer = get_channel_layer()
        self.layer_is_local = fanout.in_process(self.layer)
        self.rang = asyncio.Event()
        if self.doorbell is None:
            self.doorbell = doorbell.Listener(self.on_ring, self.poll_all_now)
            await self.doorbell.start()
        address = self.doorbell.address
        await self.db(instances.register_server, self.server_id, socket.gethostname(), os.getpid(), address)
        self.loop = loop
        self.tasks = [
            asyncio.ensure_future(self._deliver_loop()),
            asyncio.ensure_future(self._poll_loop()),
            asyncio.ensure_future(self._maintenance_loop()),
            asyncio.ensure_future(self._reap_loop()),
            # Users deactivated or deleted, sessions blacklisted: their sockets close (4403).
            asyncio.ensure_future(revocation.watch(self)),
            asyncio.ensure_future(ops.sample_loop(self)),  # the /ops/ console's samples, while watched
        ]
        if not self.layer_is_local:
            self.interest = Interest(self.layer, self._read_now, LAYER.failed)
            self.tasks.append(asyncio.ensure_future(self._layer_loop()))
        if handle_signals:
            self._install_signal_handlers()
        if handle_signals and conf.get("REALTIME_GC_FREEZE"):
            # Only in a server process (tests and shells keep the collector as is).
            gc.collect()
            gc.freeze()
        logger.info("realtime hub %s started (layer: %s)", self.server_id[:8], type(self.layer).__name__)

    async def db(self, func, *args):
        return await sync_to_async(func, thread_sensitive=False, executor=self.executor)(*args)

    def _install_signal_handlers(self) -> None:
        """Run ``shutdown()`` on SIGTERM (and Ctrl-C), then hand the signal to the server's handler.

        Checked under daphne 4.2.3: Twisted installs its handlers when the reactor
        starts, so they are ``previous`` here, and its reactor.stop() runs after
        our cleanup (clients see 4503, the rows are gone before exit).
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            try:
                signal.signal(signum, partial(self._on_signal, previous))
            except ValueError:  # not the main thread: leave signals to the server
                logger.debug("not installing signal handlers outside the main thread")
                return

    def _on_signal(self, previous, signum, frame) -> None:
        if self.stopping:  # a second signal: stop now, as the server would have
            self.loop.call_soon_threadsafe(_chain_signal, previous, signum)
            return
        # Close every socket with 4503 and clear our rows before the server
        # exits: daphne alone drops sockets without a close frame and cancels
        # disconnect handlers, so presence would leak.
        logger.info("%s: closing %d connections with 4503", signal.Signals(signum).name, len(self.connections))
        self.stopping = True
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown_then(previous, signum)))

    async def _shutdown_then(self, previous, signum) -> None:
        try:
            # Bounded: a locked database must not keep a stopping server alive.
            await asyncio.wait_for(self.shutdown(), timeout=10)
        except Exception:
            logger.exception("realtime shutdown did not finish cleanly")
        _chain_signal(previous, signum)

    async def shutdown(self) -> None:
        self.stopping = True
        await asyncio.gather(
            *(
                conn.close_with(CLOSE_TRY_AGAIN, reason=REASON_SHUTTING_DOWN)
                for conn in list(self.connections.values())
            ),
            return_exceptions=True,
        )
        for hook in self.shutdown_hooks:
            try:
                await self.db(hook, self.server_id)
            except Exception:
                logger.warning("shutdown hook %s failed", hook, exc_info=True)
        await self.db(instances.stop_server, self.server_id)
        # Let the close frames reach the wire before the server tears the sockets down.
        await asyncio.sleep(0.2)

    # --- connections -----------------------------------------------------

    def allow_connect_attempt(self, ip: str) -> bool:
        """A token bucket per client address: WEBSOCKET_CONNECT_RATE a minute, bursts up to that."""
        if self.connect_attempts is None:  # read at the first attempt, as the other settings at start
            rate = float(conf.get("WEBSOCKET_CONNECT_RATE"))
            self.connect_attempts = KeyedTokenBuckets(rate / 60.0, rate)
        return self.connect_attempts.take(ip, time.monotonic())

    def at_capacity(self) -> bool:
        return len(self.connections) >= int(conf.get("WEBSOCKET_MAX_CONNECTIONS"))

    async def add(self, conn: LocalConnection) -> None:
        """Register a connection; an older one of the same user and client id is replaced (4409)."""
        self.connections[conn.connection_id] = conn
        await self.claim_client_id(conn)

    async def claim_client_id(self, conn: LocalConnection) -> None:
        if conn.user_id is None:
            return
        key = (conn.user_id, conn.client_id)
        older = self.by_client.get(key)
        self.by_client[key] = conn
        if older is not None and older is not conn:
            await older.close_with(CLOSE_REPLACED)
        if not self.layer_is_local:
            # Not awaited: a hung Redis must not hold the handshake (it did, 15 s).
            asyncio.ensure_future(
                self._layer_send(fanout.takeover_message(conn.user_id, conn.client_id, conn.connection_id))
            )

    def remove(self, conn: LocalConnection) -> None:
        self.connections.pop(conn.connection_id, None)
        if conn.user_id is not None and self.by_client.get((conn.user_id, conn.client_id)) is conn:
            del self.by_client[(conn.user_id, conn.client_id)]
        for channel in list(self.subscribers):
            subs = self.subscribers[channel]
            subs.discard(conn)
            if not subs:
                self._forget(channel)

    def subscribe(self, conn: LocalConnection, channel: str) -> None:
        first = channel not in self.subscribers
        self.subscribers[channel].add(conn)
        if first and self.interest is not None:
            self.interest.want(channel)  # join the channel's layer group (realtime/interest.py)

    def unsubscribe(self, conn: LocalConnection, channel: str) -> None:
        subs = self.subscribers.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                self._forget(channel)

    def _forget(self, channel: str) -> None:
        # Nobody here listens any more: the next subscriber starts the count afresh
        # (note_latest), so the poller does not replay what happened meanwhile.
        del self.subscribers[channel]
        self.delivered_seq.pop(channel, None)
        if self.interest is not None:
            self.interest.drop(channel)

    async def close_connection(self, connection_id: str, code: int = CLOSE_DISCONNECTED) -> bool:
        """Close one connection wherever it lives: here at once, elsewhere through the layer."""
        conn = self.connections.get(connection_id)
        if conn is not None:
            await conn.close_with(code)
            return True
        if not self.layer_is_local:
            await self._layer_send(fanout.close_message(connection_id, code))
        return False

    # --- delivery --------------------------------------------------------

    def deliver_threadsafe(self, channel: str, seq: int, text: str) -> None:
        """Hand a committed publication to this process's sockets, from any thread."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (channel, seq, text))

    async def _deliver_loop(self) -> None:
        while True:
            channel, seq, text = await self.queue.get()
            try:
                await self._deliver(channel, seq, text)
            except Exception:
                logger.exception("delivery of %s#%s failed", channel, seq)
            if not self.queue.empty():
                # A burst (the poller hands over many at once): one loop turn
                # between publications lets Twisted hand what it holds to the
                # kernel, so a reader that keeps up never nears its send bound.
                await asyncio.sleep(0)

    async def _deliver(self, channel: str, seq: int, text: str) -> None:
        last = self.delivered_seq.get(channel)
        if last is not None and seq <= last:
            return
        if last is not None and seq > last + 1:
            # A publication overtook an earlier one (two publishers, two paths):
            # fill the gap from the store so every socket sees seq in order.
            for missed_seq, missed_text in await self.db(publisher.messages_between, channel, last, seq):
                await self._fan(channel, missed_seq, missed_text)
        await self._fan(channel, seq, text)

    async def _fan(self, channel: str, seq: int, text: str) -> None:
        self.stats["publications"] += 1
        subs = self.subscribers.get(channel)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("publication %s#%s to %d local subscribers", channel, seq, len(subs or ()))
        if not subs:
            return  # and remember nothing: no state for channels nobody here holds
        self.delivered_seq[channel] = seq
        for conn in list(subs):
            try:
                pending = conn.offer(channel, seq, text)
                if pending is not None:
                    await pending
            except Exception:
                logger.exception("push to %s failed", conn.connection_id)
        self.stats["messages_out"] += len(subs)
        counters.observe_delivery(text)

    def flush_at_tick(self, conn: LocalConnection) -> None:
        """``conn`` (a ``?batch=1`` socket) has a first publication waiting: send it at the next tick.

        One timer per process, not per socket, and one encoded frame per distinct
        batch: a timer and a frame per socket per tick cost more than batching saved.
        """
        self.batch_due.append(conn)
        if self.batch_timer is None:
            self.batch_timer = self.loop.call_later(float(conf.get("WEBSOCKET_BATCH_TICK")), self._batch_tick)

    def _batch_tick(self) -> None:
        self.batch_timer = None
        due, self.batch_due = self.batch_due, []
        frames: dict = {}
        for conn in due:
            try:
                conn.flush_batch(frames)
            except Exception:
                logger.exception("batch flush to %s failed", conn.connection_id)

    def note_latest(self, channel: str, seq: int) -> None:
        """A socket subscribed at ``seq``: this process is current on ``channel`` up to there."""
        self.delivered_seq.setdefault(channel, seq)

    def on_ring(self, origin: str, channel: str, seq: int) -> None:
        """A doorbell: ``channel`` reached ``seq`` in another process. Read it now if it is news here."""
        if origin == self.server_id or channel not in self.subscribers:
            return
        if self.delivered_seq.get(channel, -1) >= seq:
            return  # delivered already (the layer or an earlier read was faster)
        self.rung.add(channel)
        self.rang.set()

    def _read_now(self, channel: str) -> None:
        """Joined ``channel``'s layer group: read it from the store now, for what passed meanwhile."""
        self.rung.add(channel)
        self.rang.set()

    def poll_all_now(self) -> None:
        """Rings may have been lost (the doorbell reconnected): look at every channel now."""
        self.rung.update(self.subscribers)
        self.rang.set()

    async def _poll_loop(self) -> None:
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
                channels = list(self.subscribers)
            else:
                channels, self.rung = list(self.rung), set()
            known = {ch: self.delivered_seq[ch] for ch in channels if ch in self.delivered_seq}
            if not known:
                continue
            try:
                rows = await self.db(publisher.stored_after, known)
            except Exception:
                logger.warning("polling stored messages failed; retrying", exc_info=True)
                continue
            for item in rows:
                await self.queue.put(item)

    def group_send_threadsafe(self, group: str, message: dict) -> bool:
        """Send ``message`` to a layer group from the server's loop, without waiting.

        For publications made on a thread of this process (a consumer's database
        work publishing presence): a blocking ``group_send`` there held the one
        database thread of every consumer for as long as an unresponsive Redis
        took to time out (15 s a publication). False when no loop can take it.
        """
        if self.loop is None or self.loop.is_closed():
            return False
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._layer_send(message, group)))
        return True

    async def _layer_send(self, message: dict, group: str = FANOUT_GROUP) -> None:
        try:
            await self.layer.group_send(group, message)
        except Exception as exc:
            LAYER.failed(exc)
        else:
            LAYER.succeeded()

    async def _layer_loop(self) -> None:
        channel_name = None
        rejoin_at = 0.0
        while True:
            try:
                if channel_name is None or time.monotonic() > rejoin_at:
                    channel_name = channel_name or await self.layer.new_channel()
                    # channels_redis forgets group members after group_expiry
                    # (a day by default): rejoin well before that.
                    await self.layer.group_add(FANOUT_GROUP, channel_name)
                    await self.interest.connected(channel_name, list(self.subscribers))
                    rejoin_at = time.monotonic() + 600
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
            kind = message.get("type")
            if kind == fanout.PUBLISH:
                self.stats["layer_publications"] += 1
                await self.queue.put((message["channel"], message["seq"], message["text"]))
            elif kind == fanout.CLOSE:
                conn = self.connections.get(message["connection_id"])
                if conn is not None:
                    await conn.close_with(int(message["code"]))
            elif kind == fanout.REVOKE:
                await revocation.close_matching(self, set(message["users"]), set(message["sessions"]))
            elif kind == fanout.TAKEOVER:
                conn = self.by_client.get((message["user_id"], message["client_id"]))
                if conn is not None and conn.connection_id != message["connection_id"]:
                    await conn.close_with(CLOSE_REPLACED)
            elif kind in self.layer_handlers:
                try:
                    await self.layer_handlers[kind](message)
                except Exception:
                    logger.exception("handling %s failed", kind)

    # --- heartbeats, presence grace, pruning -----------------------------

    async def _maintenance_loop(self) -> None:
        interval = float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"))
        # A quarter interval keeps every bound of section 6 (silence closes after
        # 2x, dead servers pruned within 2x) with room to spare.
        tick = max(0.1, interval / 4)
        last_touch = time.monotonic()
        while not self.stopping:
            await asyncio.sleep(tick)
            if self.stopping:
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
                        await self.db(connections.touch_connections, heard)
            except Exception:
                logger.warning("heartbeat write failed; retrying", exc_info=True)
                continue
            # Rows deleted elsewhere: the admin's disconnect (4403), or another server
            # that took this one for dead (4503: the client reconnects and is recorded again).
            code = CLOSE_TRY_AGAIN if beat.revived else CLOSE_DISCONNECTED
            for connection_id in beat.gone:
                conn = self.connections.get(connection_id)
                if conn is not None:
                    await conn.close_with(code)

    async def _reap_loop(self) -> None:
        """The second line of defence: release a connection whose socket is gone
        but whose consumer never did (stuck in a handler, or a path that escaped
        its ``finally``). Seen gone on two ticks a quarter interval apart, so a
        consumer in the middle of its own release is not raced; well within the
        2 x interval of section 6. A loop of its own: the maintenance loop can
        wait on a locked database for as long as the busy timeout."""
        tick = max(0.1, float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL")) / 4)
        suspects: set[str] = set()
        while not self.stopping:
            await asyncio.sleep(tick)
            gone = {cid for cid, conn in self.connections.items() if _transport_gone(conn)}
            for cid in gone & suspects:
                conn = self.connections.get(cid)
                if conn is not None:
                    logger.warning("connection %s: socket gone but never released; releasing it", cid)
                    asyncio.ensure_future(conn.release())
            suspects = gone - suspects

    def schedule_offline(self, user_id: str) -> None:
        """After the grace period, a user with no connection left goes offline."""
        grace = float(conf.get("WEBSOCKET_PRESENCE_GRACE"))
        timer = self.offline_timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

        def fire():
            self.offline_timers.pop(user_id, None)
            asyncio.ensure_future(self._finish_offline(user_id))

        self.offline_timers[user_id] = self.loop.call_later(grace, fire)

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


def _chain_signal(previous, signum: int) -> None:
    """Let the handler we replaced (Twisted's, uvicorn's, or the default) act on the signal."""
    if callable(previous):
        previous(signum, None)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_hub: Hub | None = None


def get_hub() -> Hub:
    global _hub
    if _hub is None:
        _hub = Hub()
        fanout.attach(_hub)  # the publisher and presence reach it through the seam
    return _hub


def running_hub() -> Hub | None:
    """The hub of this process if it serves sockets, else None (a shell, a worker)."""
    return _hub if _hub is not None and _hub.started else None


def reset_hub() -> None:
    """Forget the hub (tests start each server-side scenario with a fresh one)."""
    global _hub
    fanout.detach()
    if _hub is not None:
        for handle in [*_hub.tasks, *_hub.offline_timers.values(), _hub.batch_timer]:
            if handle is None:
                continue
            try:
                handle.cancel()
            except RuntimeError:  # its event loop is closed already
                pass
        if _hub.interest is not None:
            try:
                _hub.interest.close()
            except RuntimeError:
                pass
        if _hub.doorbell is not None:
            try:
                _hub.doorbell.close()
            except RuntimeError:
                pass
        from django.db import connections

        _hub.executor.submit(connections.close_all)
        _hub.executor.shutdown(wait=False)
    _hub = None
