"""The live operations console's data: each server process publishes a sample of itself on ``ops``.

``ops`` is a staff-only channel (registered in ``apps.py``). While someone is
subscribed to it, on any server, every process publishes an ``ops_sample``
every ``REALTIME_OPS_INTERVAL`` seconds (default 2) with the same counters as
``/metrics`` (``realtime.counters`` and the hub's stats): its connections,
its channels and their subscribers, publications and deliveries per second
since its last sample, delivery latency p50/p99 over the last minute (from the
latency histogram's buckets, as Prometheus' ``histogram_quantile`` reads
them), closes and errors by code, recent closes, and clients that were rate
limited or are slow to read. Samples are ordinary publications: stored,
sequenced, replayable, so ``/ops/`` draws the last minutes from the channel's
history and then follows it live, over Dexter's own protocol. Nobody
watching costs one indexed query per interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque

from . import conf, counters
from .models import Connection
from .publisher import publish

logger = logging.getLogger(__name__)

OPS_CHANNEL = "ops"
LATENCY_WINDOW = 60.0  # seconds of the p50/p99 shown
MAX_CHANNELS = 50
MAX_CONNECTIONS = 100


def someone_watching() -> bool:
    # Subscriptions are a JSON list per connection row: '"ops"' matches that element only.
    return Connection.objects.filter(subscriptions__icontains=f'"{OPS_CHANNEL}"').exists()


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative (upper bound, count) pairs, +Inf last."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower  # beyond the largest finite bucket: its bound, as Prometheus does
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def queued_bytes(conn) -> int:
    """Bytes written to this socket and not yet taken by the kernel (Twisted's buffer)."""
    try:
        transport = conn._wire.protocol.transport
        return len(transport.dataBuffer) + int(getattr(transport, "_tempDataLen", 0))
    except Exception:
        return 0


class Sampler:
    def __init__(self, hub) -> None:
        self.hub = hub
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.last: tuple[float, float, float] | None = None  # (t, publications, deliveries)
        self.windows: deque = deque()  # (t, [(le, count)]) over LATENCY_WINDOW

    def sample(self) -> dict:
        hub = self.hub
        now = time.time()
        totals = counters.totals()
        publications, deliveries = hub.stats["publications"], hub.stats["messages_out"]
        rates = {"publications": 0.0, "deliveries": 0.0}
        if self.last is not None and now > self.last[0]:
            dt = now - self.last[0]
            rates = {
                "publications": (publications - self.last[1]) / dt,
                "deliveries": (deliveries - self.last[2]) / dt,
            }
        self.last = (now, publications, deliveries)

        buckets = [(float(le), count) for le, count in totals.pop("latency_buckets", [])]
        self.windows.append((now, buckets))
        while len(self.windows) > 1 and self.windows[0][0] < now - LATENCY_WINDOW:
            self.windows.popleft()
        base = dict(self.windows[0][1]) if len(self.windows) > 1 else {}
        recent = [(le, count - base.get(le, 0.0)) for le, count in buckets]

        channels = sorted(((name, len(subs)) for name, subs in hub.subscribers.items()), key=lambda c: -c[1])
        conns = []
        for conn in list(hub.connections.values())[:MAX_CONNECTIONS]:
            user = getattr(conn, "user", None)
            conns.append(
                {
                    "connection_id": conn.connection_id,
                    "client_id": getattr(conn, "client_id", ""),
                    "user_id": getattr(conn, "user_id", None),
                    "username": getattr(user, "username", None),
                    "subscriptions": len(getattr(conn, "subs", ()) or ()),
                    "queued_bytes": queued_bytes(conn),
                    "transport": "sse" if type(conn).__name__.lower().startswith("sse") else "websocket",
                }
            )
        return {
            "type": "ops_sample",
            "server_id": hub.server_id,
            "host": self.host,
            "pid": self.pid,
            "interval": float(conf.get("REALTIME_OPS_INTERVAL")),
            "sampled_at": now,
            "connections": len(hub.connections),
            "connection_list": conns,
            "channels": [[name, count] for name, count in channels[:MAX_CHANNELS]],
            "channel_count": len(channels),
            "rates": rates,
            "latency": {
                "p50": quantile(0.5, recent),
                "p99": quantile(0.99, recent),
                "count": recent[-1][1] if recent else 0,
                "window": LATENCY_WINDOW,
            },
            "totals": {
                "publications": publications,
                "deliveries": deliveries,
                "messages_in": hub.stats["messages_in"],
                **totals,
            },
            "recent_closes": list(counters.RECENT_CLOSES)[-20:],
            "trouble": list(counters.RECENT_TROUBLE)[-20:],
        }

    def publish_if_watched(self) -> bool:
        if OPS_CHANNEL not in self.hub.subscribers and not someone_watching():
            self.last = None  # rates restart from the next sample
            return False
        publish(OPS_CHANNEL, self.sample())
        return True


async def sample_loop(hub) -> None:
    sampler = Sampler(hub)
    while not hub.stopping:
        await asyncio.sleep(float(conf.get("REALTIME_OPS_INTERVAL")))
        if hub.stopping:
            return
        try:
            await hub.db(sampler.publish_if_watched)
        except Exception:
            logger.debug("ops sample failed", exc_info=True)
