"""Doorbells: a publication committed in one process wakes the servers of the others at once.

The database stays the truth. A doorbell only says "channel C has seq N now";
the server that hears it reads the frames from the store (the same read as its
poller, for the rung channels only), so a forged or stray ring costs at most a
read and can never put a frame on a socket. A lost ring is made up by the
poller (``REALTIME_POLL_INTERVAL``), exactly as before doorbells existed.

- **PostgreSQL**: ``NOTIFY`` inside the publishing transaction (folded into the
  seq ``UPDATE ... RETURNING``, so no extra round trip); PostgreSQL delivers it
  at commit, never for a rolled-back save. Each server ``LISTEN``s on a psycopg
  3 async connection of its own. Several servers on one PostgreSQL need no Redis.
  While that connection cannot be made, one warning, then retries backing off
  to ``REALTIME_LAYER_RETRY_MAX`` (the poller delivers meanwhile).
- **SQLite** (the embedded default): each server binds a UDP socket on the
  loopback and records its port in ``ServerInstance.doorbell``; the committing
  process sends one datagram to each live server of its host after commit.
- With a cross-process channel layer (Redis) the layer message is the
  doorbell, and none of these is used.

``REALTIME_DOORBELL`` = ``off`` turns them off (then only the poller delivers
other processes' publications).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from django.db import connections, router

from . import conf
from .outage import Outage

logger = logging.getLogger(__name__)

# The LISTEN/NOTIFY channel of PostgreSQL (one per database, so per deployment).
PG_CHANNEL = "dexter_realtime"
# How long a publishing process trusts its list of local servers' doorbells: a
# server started meanwhile misses at most this long of rings (its poller covers them).
TARGETS_TTL = 1.0
# Ring = "<origin server id>\n<channel>\n<seq>"; anything else is ignored.
MAX_RING_BYTES = 512


def kind(using: str | None = None) -> str | None:
    """Which doorbell this deployment rings: "postgresql", "udp" or None."""
    if str(conf.get("REALTIME_DOORBELL")).lower() in ("off", "0", "false", "no"):
        return None
    if _shared_layer():
        return None  # the channel layer carries every publication already
    vendor = connections[using or router.db_for_write(_message_model())].vendor
    return {"postgresql": "postgresql", "sqlite": "udp"}.get(vendor)


def _shared_layer() -> bool:
    from channels.layers import get_channel_layer

    from .fanout import in_process

    return not in_process(get_channel_layer())


def _message_model():
    from .models import Message

    return Message


def encode_ring(origin: str, channel: str, seq: int) -> str:
    return f"{origin}\n{channel}\n{seq}"


def decode_ring(data: bytes | str) -> tuple[str, str, int] | None:
    if isinstance(data, bytes):
        if len(data) > MAX_RING_BYTES:
            return None
        data = data.decode("utf-8", "replace")
    parts = data.split("\n")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


# --- the publishing side ------------------------------------------------------

_targets: tuple[float, list[tuple[str, tuple[str, int]]]] = (0.0, [])
_sender: socket.socket | None = None


def ring_after_commit(origin: str, channel: str, seq: int) -> None:
    """SQLite: one datagram to each other live server on this host (called after commit)."""
    global _sender
    targets = _udp_targets()
    if not targets:
        return
    if _sender is None:
        _sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        _sender.setblocking(False)
    data = encode_ring(origin, channel, seq).encode()
    for server_id, address in targets:
        if server_id == origin:
            continue  # this process's own hub had it handed over directly
        try:
            _sender.sendto(data, address)
        except OSError:  # a full buffer or a server gone: its poller or nobody needs it
            pass


def _udp_targets() -> list[tuple[str, tuple[str, int]]]:
    global _targets
    fetched_at, targets = _targets
    now = time.monotonic()
    if now - fetched_at < TARGETS_TTL:
        return targets
    from .models import ServerInstance

    targets = []
    rows = ServerInstance.objects.filter(stopped_at__isnull=True, hostname=socket.gethostname()).exclude(doorbell="")
    for server_id, address in rows.values_list("id", "doorbell"):
        scheme, _, rest = address.partition(":")
        host, _, port = rest.rpartition(":")
        if scheme == "udp" and port.isdigit():
            targets.append((server_id, (host, int(port))))
    _targets = (now, targets)
    return targets


def forget_targets() -> None:
    """Read the server list afresh at the next ring (tests, a server that just registered)."""
    global _targets
    _targets = (0.0, [])


# --- the server side ------------------------------------------------------------


class _RingProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_ring: Callable[[str, str, int], None]) -> None:
        self.on_ring = on_ring

    def datagram_received(self, data: bytes, addr) -> None:
        ring = decode_ring(data)
        if ring is not None:
            self.on_ring(*ring)


class Listener:
    """What a server runs to hear rings; ``address`` goes into its ServerInstance row."""

    def __init__(self, on_ring: Callable[[str, str, int], None], on_reconnect: Callable[[], None]) -> None:
        self.on_ring = on_ring
        self.on_reconnect = on_reconnect
        self.address = ""
        self.transport: asyncio.DatagramTransport | None = None
        self.task: asyncio.Task | None = None
        self.outage = Outage("PostgreSQL LISTEN (the doorbell)", logger, "; the poller delivers meanwhile")

    async def start(self) -> None:
        which = kind()
        if which == "udp":
            loop = asyncio.get_running_loop()
            self.transport, _ = await loop.create_datagram_endpoint(
                lambda: _RingProtocol(self.on_ring), local_addr=("127.0.0.1", 0)
            )
            host, port = self.transport.get_extra_info("sockname")[:2]
            self.address = f"udp:{host}:{port}"
        elif which == "postgresql":
            self.task = asyncio.ensure_future(self._listen_postgresql())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.task is not None:
            self.task.cancel()

    async def _listen_postgresql(self) -> None:
        import psycopg

        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(**_psycopg_params(), autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PG_CHANNEL}")
                    self.outage.succeeded()
                    if not first:
                        self.on_reconnect()  # rings sent while we were away are lost: poll now
                    first = False
                    async for notify in conn.notifies():
                        ring = decode_ring(notify.payload)
                        if ring is not None:
                            self.on_ring(*ring)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # One warning for the outage, retries backing off to REALTIME_LAYER_RETRY_MAX:
                # a PostgreSQL that is down must not log a traceback a second.
                await asyncio.sleep(self.outage.failed(exc))


def _psycopg_params() -> dict:
    """The default database's connection parameters, without Django's own psycopg objects."""
    params = connections[router.db_for_write(_message_model())].get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold", "pool"):
        params.pop(key, None)
    return params
