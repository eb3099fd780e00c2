"""The delivery seam: how a publication or a close leaves this process, and to whom.

Everything that reaches another server process goes through the channel
layer as one of the ``rt.*`` messages built here, on ``FANOUT_GROUP`` (or a
channel's interest group, realtime/interest.py); whether the layer reaches
other processes at all is ``in_process(layer)``. Both are defined here once.

The hub of a process that serves sockets plugs itself in (``attach``), and
the publisher, presence and revocation hand it work through ``local()``
without importing the hub: they sit below it, and the hub above them all.

The rule a caller must know: ``local()`` is None in a process that serves no
sockets (a shell, a worker, a request before the first socket); then the
layer, or the other servers' pollers, deliver.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from .outage import Outage

logger = logging.getLogger("realtime.hub")  # the hub's: one place to read the layer's health

FANOUT_GROUP = "rt.fanout"
# The channel layer's health as this process sees it: one warning when it goes,
# one line when it is back (realtime/outage.py); shared by the hub and the publisher.
LAYER = Outage("channel layer", logger, "; the database poller delivers meanwhile")

# --- the rt.* layer messages ---------------------------------------------------
PUBLISH = "rt.publish"  # a stored publication: channel, seq, its encoded text
CLOSE = "rt.close"  # close one connection, wherever it is: connection_id, code
TAKEOVER = "rt.takeover"  # a newer connection of (user_id, client_id) replaces older ones
REVOKE = "rt.revoke"  # close every connection of these users or token sessions
CHANNEL_PRESENCE = "rt.chpresence"  # a channel's members changed on another server: re-read them
SIGNAL = "rt.signal"  # a typing-style signal for a channel's subscribers elsewhere (section 11)


def publish_message(channel: str, seq: int, text: str) -> dict:
    return {"type": PUBLISH, "channel": channel, "seq": seq, "text": text}


def close_message(connection_id: str, code: int) -> dict:
    return {"type": CLOSE, "connection_id": connection_id, "code": code}


def takeover_message(user_id: str | None, client_id: str, connection_id: str) -> dict:
    return {"type": TAKEOVER, "user_id": user_id, "client_id": client_id, "connection_id": connection_id}


def revoke_message(users: list[str], sessions: list[str]) -> dict:
    return {"type": REVOKE, "users": users, "sessions": sessions}


def in_process(layer: Any) -> bool:
    """True when ``layer`` reaches this process only (none, or the in-memory one):
    then nothing is sent on it, the other servers' pollers deliver from the store."""
    return layer is None or isinstance(layer, InMemoryChannelLayer)


# --- the local hub ---------------------------------------------------------------

_local: Any = None


def attach(hub: Any) -> None:
    """Called by the hub when it is made: it serves this process's sockets once started."""
    global _local
    _local = hub


def detach() -> None:
    global _local
    _local = None


def local() -> Any:
    """The hub of this process if it serves sockets, else None."""
    hub = _local
    return hub if hub is not None and hub.started else None


def send_from_thread(message: dict, group: str = FANOUT_GROUP) -> bool:
    """Send ``message`` on the layer from a plain thread; False when there is no
    cross-process layer or it is down (logged once per outage, never raised)."""
    layer = get_channel_layer()
    if in_process(layer):
        return False
    try:
        asyncio.run_coroutine_threadsafe(layer.group_send(group, message), _sending_loop()).result()
    except Exception as exc:
        LAYER.failed(exc)
        return False
    return True


_sender: tuple[int, asyncio.AbstractEventLoop] | None = None
_sender_lock = threading.Lock()


def _sending_loop() -> asyncio.AbstractEventLoop:
    """One event loop on a daemon thread for this process's sends from plain threads.

    channels_redis keeps its connections per event loop, and async_to_sync ran
    each send on a new loop: a worker or a shell opened a Redis connection per
    publication (102 connections for 100). Made again after a fork (a prefork
    worker inherits the loop but not its thread).
    """
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="realtime-layer-send", daemon=True).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def close_connections_threadsafe(connection_ids: list[str], code: int, timeout: float = 5.0) -> int:
    """Close connections from a plain thread (the admin); returns how many were open here.

    Those of this process close at once on its loop; with a cross-process layer
    (Redis) the others get an ``rt.close``. Without one, the owning server closes
    them when its heartbeat finds their rows gone, so delete the rows first.
    """
    hub = local()
    if hub is None:
        for connection_id in connection_ids:
            send_from_thread(close_message(connection_id, code))
        return 0

    async def close_all() -> int:
        return sum([await hub.close_connection(cid, code) for cid in connection_ids])

    try:
        on_loop = asyncio.get_running_loop() is hub.loop
    except RuntimeError:
        on_loop = False
    if on_loop:  # cannot wait for ourselves: schedule it and count what is here
        asyncio.ensure_future(close_all())
        return sum(cid in hub.connections for cid in connection_ids)
    return asyncio.run_coroutine_threadsafe(close_all(), hub.loop).result(timeout)
