"""The per-process delivery hub: one per server process, owning its local sockets.

Why it exists (bench/README.md has the figures): the textbook Channels pattern
(a consumer per socket in a layer group, ``group_send``, ``send_json`` per
recipient) costs one layer message, one JSON encoding and one consumer wake-up
per recipient. Here each publication reaches a process once (a local hand-off,
one channel-layer message to the channel's group, which only processes with
local subscribers join (realtime/interest.py), or a doorbell and the database
poller), is encoded once by the publisher, and the hub writes that text to
every local subscriber itself. Consumers hold no channel-layer channel of their own.

It composes parts that get what they need handed in and import nothing of it:
delivery.py (connections, in-order delivery), poller.py, layer_listener.py,
maintenance.py, lifecycle.py (signals) and ratelimit.py (the connect rate).

The rule a caller must know: everything here runs on the event loop of the
server process; other threads hand publications in with ``deliver_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from . import conf, doorbell, fanout, instances, layer_listener, ops, publisher, revocation
from .delivery import Delivery, LocalConnection
from .fanout import FANOUT_GROUP, LAYER
from .interest import Interest
from .layer_listener import LayerListener
from .lifecycle import SignalShutdown, freeze_gc
from .maintenance import Maintenance
from .poller import Poller
from .protocol import CLOSE_DISCONNECTED, CLOSE_TRY_AGAIN, REASON_SHUTTING_DOWN
from .ratelimit import KeyedTokenBuckets

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Hub:
    """This process's sockets: the parts below, composed, and the calls consumers make."""

    def __init__(self) -> None:
        self.server_id = uuid.uuid4().hex
        self.loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Future | None = None
        self.tasks: list[asyncio.Task] = []
        self.stopping = False
        self.layer = None
        self.layer_is_local = True
        self.connect_attempts: KeyedTokenBuckets | None = None
        self.interest: Interest | None = None
        self.listener: LayerListener | None = None
        self.doorbell: doorbell.Listener | None = None
        # Background database work runs on a thread of its own, so a slow poll or
        # prune never stalls the shared thread that consumers' ORM calls use.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime-hub")
        # The poller's and a gap's store reads get one of their own: behind the heartbeat's
        # and presence's writes on the thread above, a doorbell's read waited its turn.
        self.read_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime-read")
        # Extensions (channel_tracker.py): layer message types they handle, and
        # database work for a clean shutdown, called with this server's id.
        self.layer_handlers: dict[str, Callable[[dict], Awaitable[None]]] = {}
        self.shutdown_hooks: list[Callable[[str], object]] = []

        self.delivery = Delivery(lambda *args: self.read(publisher.messages_between, *args))
        # The registry's state, shared (never rebound): what consumers, ops and metrics read.
        self.connections = self.delivery.connections
        self.by_client = self.delivery.by_client
        self.subscribers = self.delivery.subscribers
        self.delivered_seq = self.delivery.delivered_seq
        self.stats = self.delivery.stats
        self.poller = Poller(
            self.server_id,
            self.subscribers,
            self.delivered_seq,
            lambda known: self.read(publisher.stored_after, known),
            self.delivery.queue.put,
        )
        self.maintenance = Maintenance(self.server_id, self.connections, self.db, self._is_stopping)

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
        self.layer = get_channel_layer()
        self.layer_is_local = fanout.in_process(self.layer)
        if self.doorbell is None:
            self.doorbell = doorbell.Listener(self.poller.ring, self.poller.poll_all_now)
            await self.doorbell.start()
        address = self.doorbell.address
        await self.db(instances.register_server, self.server_id, socket.gethostname(), os.getpid(), address)
        self.loop = self.delivery.loop = loop
        self.tasks = [
            asyncio.ensure_future(self.delivery.run()),
            asyncio.ensure_future(self.poller.run()),
            asyncio.ensure_future(self.maintenance.run()),
            asyncio.ensure_future(self.maintenance.reap()),
            # Users deactivated or deleted, sessions blacklisted: their sockets close (4403).
            asyncio.ensure_future(revocation.watch(self)),
            asyncio.ensure_future(ops.sample_loop(self)),  # the /ops/ console's samples, while watched
        ]
        if not self.layer_is_local:
            self.interest = self.delivery.interest = Interest(self.layer, self.poller.read_now, LAYER.failed)
            self.listener = LayerListener(self.layer, self.interest, self.subscribers, self._on_layer_message)
            self.tasks.append(asyncio.ensure_future(self.listener.run()))
        if handle_signals:
            SignalShutdown(
                loop, self.shutdown, self._is_stopping, self._begin_stopping, self.connections.__len__
            ).install()
        if handle_signals and conf.get("REALTIME_GC_FREEZE"):
            freeze_gc()  # only in a server process (tests and shells keep the collector as is)
        logger.info("realtime hub %s started (layer: %s)", self.server_id[:8], type(self.layer).__name__)

    async def db(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` on the hub's database thread."""
        return await sync_to_async(func, thread_sensitive=False, executor=self.executor)(*args)

    async def read(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)``, a store read of publications, on the hub's reading thread."""
        return await sync_to_async(func, thread_sensitive=False, executor=self.read_executor)(*args)

    def _is_stopping(self) -> bool:
        return self.stopping

    def _begin_stopping(self) -> None:
        self.stopping = True

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
        await self.delivery.claim_client_id(conn)
        if not self.layer_is_local:
            # Not awaited: a hung Redis must not hold the handshake (it did, 15 s).
            asyncio.ensure_future(
                self._layer_send(fanout.takeover_message(conn.user_id, conn.client_id, conn.connection_id))
            )

    def remove(self, conn: LocalConnection) -> None:
        self.delivery.remove(conn)

    def subscribe(self, conn: LocalConnection, channel: str) -> None:
        self.delivery.subscribe(conn, channel)

    def unsubscribe(self, conn: LocalConnection, channel: str) -> None:
        self.delivery.unsubscribe(conn, channel)

    def note_latest(self, channel: str, seq: int) -> None:
        """A socket subscribed at ``seq``: this process is current on ``channel`` up to there."""
        self.delivery.note_latest(channel, seq)

    def flush_at_tick(self, conn: LocalConnection) -> None:
        """``conn`` (a ``?batch=1`` socket) has a first publication waiting: send it at the next tick."""
        self.delivery.flush_at_tick(conn)

    def schedule_offline(self, user_id: str) -> None:
        """After the grace period, a user with no connection left goes offline."""
        self.maintenance.schedule_offline(user_id)

    async def close_connection(self, connection_id: str, code: int = CLOSE_DISCONNECTED) -> bool:
        """Close one connection wherever it lives: here at once, elsewhere through the layer."""
        if await self.delivery.close_local(connection_id, code):
            return True
        if not self.layer_is_local:
            await self._layer_send(fanout.close_message(connection_id, code))
        return False

    # --- delivery and the layer --------------------------------------------

    def deliver_threadsafe(self, channel: str, seq: int, text: str) -> None:
        """Hand a committed publication to this process's sockets, from any thread."""
        self.delivery.deliver_threadsafe(channel, seq, text)

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
        await layer_listener.group_send(self.layer, group, message)

    async def tell_other_servers(self, message: dict) -> None:
        """``message`` to every other server process through the layer; nothing with the in-process one."""
        if not self.layer_is_local:
            await self._layer_send(message)

    async def _on_layer_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind == fanout.PUBLISH:
            self.stats["layer_publications"] += 1
            await self.delivery.queue.put((message["channel"], message["seq"], message["text"]))
        elif kind == fanout.CLOSE:
            await self.delivery.close_local(message["connection_id"], int(message["code"]))
        elif kind == fanout.REVOKE:
            await revocation.close_matching(self, set(message["users"]), set(message["sessions"]))
        elif kind == fanout.TAKEOVER:
            await self.delivery.take_over(message["user_id"], message["client_id"], message["connection_id"])
        elif kind in self.layer_handlers:
            await self.layer_handlers[kind](message)  # an exception is the listener's to log


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
        timers = [*_hub.maintenance.offline_timers.values(), _hub.delivery.batch_timer]
        for handle in [*_hub.tasks, *timers]:
            if handle is None:
                continue
            try:
                handle.cancel()
            except RuntimeError:  # its event loop is closed already
                pass
        for part in (_hub.interest, _hub.doorbell):
            if part is None:
                continue
            try:
                part.close()
            except RuntimeError:
                pass
        from django.db import connections

        for executor in (_hub.executor, _hub.read_executor):
            executor.submit(connections.close_all)
            executor.shutdown(wait=False)
    _hub = None
