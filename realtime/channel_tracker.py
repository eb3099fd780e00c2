"""The per-process side of channel presence and signals (docs/protocol.md sections 10 and 11).

The rows (``channel_presence``) are the truth; each server process keeps, for
the channels its sockets hold with presence, the members it last told them
about, and sends ``channel_presence_diff`` whenever the rows say something else.
It re-reads a channel's rows (one query, all its channels at once):

- at once, when one of its own sockets sets an activity; when one joins or
  leaves a channel it already tracks, only that user's rows are read (their
  entry is the only one the change can alter) and patched into what it told;
- at once, with Redis, when another process says a channel changed (``rt.chpresence``);
- every REALTIME_POLL_INTERVAL in any case, which is how changes made by other
  processes arrive without Redis, and how sweeps (grace over, a dead server's
  rows) reach every process, within the bounds of global presence.

Re-reading instead of applying the changes carried by messages means order
does not matter: whatever arrives, a process converges on what the rows say.
Signals are relayed to local subscribers at once and, with Redis, to the other
processes (``rt.signal``); they never touch the database.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import defaultdict

from . import channel_presence, conf
from .fanout import CHANNEL_PRESENCE as PRESENCE_MESSAGE
from .fanout import SIGNAL as SIGNAL_MESSAGE
from .protocol import encode

logger = logging.getLogger(__name__)


def _send_now(conn, text: str) -> bool:
    """``_send`` without a coroutine: True when the socket's direct wire took the frame."""
    wire = getattr(conn, "_wire", None)
    return wire is not None and not getattr(conn, "closed", False) and wire.send_text(text)


async def _send(conn, text: str) -> None:
    """One message to one local connection.

    A socket: through its direct wire when daphne serves it (as the hub's
    fan-out does: no ASGI send per recipient), else the ASGI send. An SSE
    stream: an event of the message's type (``push_text``).
    """
    if getattr(conn, "closed", False):
        return
    wire = getattr(conn, "_wire", None)
    if wire is not None and wire.send_text(text):
        return
    push = getattr(conn, "push_text", None)
    if push is not None:
        pending = push(text)
        if pending is not None:
            await pending
        return
    base_send = getattr(conn, "base_send", None)
    if base_send is not None:
        await base_send({"type": "websocket.send", "text": text})


def diff_frame(channel: str, old: dict[str, dict], new: dict[str, dict]) -> str | None:
    """``channel_presence_diff`` from two member maps, or None when they agree.

    A changed member (activity, connection count) is a leave of the old entry
    and a join of the new one, as section 10 says.
    """
    joins = [entry for uid, entry in new.items() if old.get(uid) != entry]
    leaves = [entry for uid, entry in old.items() if new.get(uid) != entry]
    if not joins and not leaves:
        return None
    by_name = lambda e: (e["username"], e["user_id"])  # noqa: E731
    return encode(
        {
            "type": "channel_presence_diff",
            "channel": channel,
            "joins": sorted(joins, key=by_name),
            "leaves": sorted(leaves, key=by_name),
        }
    )


class ChannelTracker:
    def __init__(self, hub) -> None:
        self.hub = hub
        self.subscribers: dict[str, set] = defaultdict(set)  # presence subscribers per channel
        self.members: dict[str, dict[str, dict]] = {}  # what they were last told
        self.lock = asyncio.Lock()
        self.task: asyncio.Task | None = None
        hub.layer_handlers[PRESENCE_MESSAGE] = self._on_layer_presence
        hub.layer_handlers[SIGNAL_MESSAGE] = self._on_layer_signal
        hub.shutdown_hooks.append(channel_presence.server_stopped)

    def _ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._loop())
            self.hub.tasks.append(self.task)

    # --- a local connection's changes --------------------------------------

    async def join(self, conn, channel: str) -> None:
        """``subscribe`` with ``presence: true``: write the row, tell the others, then the snapshot."""
        self._ensure_running()
        conn.presence_joined = True
        async with self.lock:
            change = (channel_presence.join, (channel, conn.user_id, conn.connection_id, self.hub.server_id))
            await self._apply(channel, conn.user_id, change)
            self.subscribers[channel].add(conn)
            members = sorted(self.members[channel].values(), key=lambda e: (e["username"], e["user_id"]))
            # Under the lock: no diff can reach this socket before its snapshot.
            await _send(conn, encode({"type": "channel_presence", "channel": channel, "members": members}))
        if getattr(conn, "closed", False):  # it ended while joining: connection_ended saw nothing to release
            await self.connection_ended(conn)
        await self._tell_others(channel)

    def holds(self, conn, channel: str) -> bool:
        return conn in self.subscribers.get(channel, ())

    async def leave(self, conn, channel: str) -> None:
        """``unsubscribe``: the connection's row goes at once (one DELETE)."""
        if not self._drop(conn, channel):
            return
        change = (channel_presence.leave, (channel, conn.user_id, conn.connection_id))
        async with self.lock:
            if channel in self.subscribers:
                await self._apply(channel, conn.user_id, change)
            else:  # nobody else here holds it: nobody here to tell
                await self.hub.db(change[0], *change[1])
        await self._tell_others(channel)

    async def set_activity(self, conn, channel: str, activity: str | None) -> bool:
        """Write it; the caller acks, then calls ``changed`` (so the ack comes before the diff)."""
        if not self.holds(conn, channel):
            return False
        await self.hub.db(channel_presence.set_activity, channel, conn.user_id, conn.connection_id, activity)
        return True

    async def changed(self, channel: str) -> None:
        await self.refresh([channel])
        await self._tell_others(channel)

    async def connection_ended(self, conn) -> None:
        """Every way a connection ends: its rows start their reload grace (one UPDATE)."""
        held = [channel for channel, conns in self.subscribers.items() if conn in conns]
        for channel in held:
            self._drop(conn, channel)
        if not held and not getattr(conn, "presence_joined", False):
            return  # it never joined a channel's presence: no write
        try:
            await self.hub.db(channel_presence.connection_closed, conn.connection_id)
        except Exception:
            # The rows stay live until the sweep finds their connection row gone.
            logger.warning("could not release channel presence of %s", conn.connection_id, exc_info=True)

    def _drop(self, conn, channel: str) -> bool:
        conns = self.subscribers.get(channel)
        if conns is None or conn not in conns:
            return False
        conns.discard(conn)
        if not conns:
            del self.subscribers[channel]
            self.members.pop(channel, None)
        return True

    # --- re-reading the rows -----------------------------------------------

    async def refresh(self, channels: list[str]) -> None:
        """Re-read the channels this process's sockets hold with presence (others are nobody's here)."""
        async with self.lock:
            await self._refresh([c for c in channels if c in self.subscribers])

    async def _apply(self, channel: str, user_id, change: tuple) -> None:
        """Make a local socket's join or leave (``change``) and tell the channel's local subscribers.

        On a channel this process tracks, the change can only alter that user's
        entry: it is read alone and patched into the members last told (changes
        elsewhere arrive by their own refresh). On a new channel the whole
        channel is read, as the joiner's snapshot needs it.
        """
        old = self.members.get(channel)
        if old is None:
            await self._refresh([channel], change)
            return
        entry = await self.hub.db(channel_presence.then_entry, change[0], change[1], channel, user_id)
        if self.members.get(channel) is not old:
            return  # re-read meanwhile (the last local subscriber left): nothing to patch
        new = dict(old)
        if entry is None:
            new.pop(str(user_id), None)
        else:
            new[str(user_id)] = entry
        self.members[channel] = new
        await self._fan_out(channel, diff_frame(channel, old, new))

    async def _refresh(self, channels: list[str], change: tuple | None = None) -> None:
        """Read the rows of ``channels`` (after making ``change``, a (function, args) of
        channel_presence, in the same database call); send each local subscriber what changed."""
        if not channels:
            return
        if change is None:
            current = await self.hub.db(channel_presence.members, channels)
        else:
            current = await self.hub.db(channel_presence.then_members, change[0], change[1], channels)
        for channel, new in current.items():
            old = self.members.get(channel)
            self.members[channel] = new
            if old is not None:
                await self._fan_out(channel, diff_frame(channel, old, new))

    async def _fan_out(self, channel: str, text: str | None) -> None:
        """One diff to every local presence subscriber of ``channel``."""
        if text is None:
            return
        for conn in list(self.subscribers.get(channel, ())):
            try:
                # No coroutine per recipient where the direct wire takes the frame.
                if _send_now(conn, text):
                    continue
                await _send(conn, text)
            except Exception:
                logger.warning("channel presence to %s failed", conn.connection_id, exc_info=True)

    async def _loop(self) -> None:
        """Poll the rows of every local presence channel; sweep expired and orphaned rows."""
        sweep_every = max(0.1, float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL")) / 4)
        next_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self.hub.stopping:
            await asyncio.sleep(float(conf.get("REALTIME_POLL_INTERVAL")))
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + min(sweep_every, float(conf.get("WEBSOCKET_PRESENCE_GRACE")) / 2)
                    for channel in await self.hub.db(channel_presence.sweep):
                        await self._tell_others(channel)
                if self.subscribers:
                    await self.refresh(list(self.subscribers))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("channel presence poll failed; retrying", exc_info=True)

    # --- across processes ------------------------------------------------

    async def _tell_others(self, channel: str) -> None:
        await self.hub.tell_other_servers({"type": PRESENCE_MESSAGE, "origin": self.hub.server_id, "channel": channel})

    async def _on_layer_presence(self, message: dict) -> None:
        if message.get("origin") != self.hub.server_id and message["channel"] in self.subscribers:
            await self.refresh([message["channel"]])

    # --- signals (section 11) --------------------------------------------

    async def relay_signal(self, conn, channel: str, event: str, data: dict) -> None:
        text = encode({"type": "signal", "channel": channel, "event": event, "user_id": conn.user_id, "data": data})
        await self.relay_local(channel, text, conn.connection_id)
        await self.hub.tell_other_servers(
            {
                "type": SIGNAL_MESSAGE,
                "origin": self.hub.server_id,
                "channel": channel,
                "text": text,
                "sender": conn.connection_id,
            }
        )

    async def relay_local(self, channel: str, text: str, sender: str) -> None:
        for other in list(self.hub.subscribers.get(channel, ())):
            if other.connection_id == sender:
                continue  # never echoed
            try:
                await _send(other, text)
            except Exception:
                logger.warning("signal to %s failed", other.connection_id, exc_info=True)

    async def _on_layer_signal(self, message: dict) -> None:
        if message.get("origin") != self.hub.server_id:
            await self.relay_local(message["channel"], message["text"], message["sender"])


_trackers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_tracker(hub) -> ChannelTracker:
    """The tracker of this process's hub (one per hub)."""
    tracker = _trackers.get(hub)
    if tracker is None:
        tracker = _trackers[hub] = ChannelTracker(hub)
    return tracker
