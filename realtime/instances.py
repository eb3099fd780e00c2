"""Server instances as ``ServerInstance`` rows: registered, heartbeating, stopped, pruned when dead.

Rows of a server that stops heartbeating are pruned by whichever process looks
next, and its users go offline (``realtime.presence``). Liveness is judged on
this row alone: the hub calls ``server_heartbeat`` every quarter interval, one
UPDATE of the process's own row (one row per process, whatever its connection
count), one SELECT of its connection ids, and a prune of dead servers. A server
silent for one interval is dead, so a killed server's users are offline within
1.25 x the interval (< 2 x). Synchronous ORM code; the hub calls it from a thread.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta
from typing import NamedTuple

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import conf, presence
from .models import Connection, ServerInstance

logger = logging.getLogger(__name__)


class Heartbeat(NamedTuple):
    gone: list[str]  # local connections whose rows vanished (the admin's disconnect)
    revived: bool  # another process had taken this server for dead and pruned it


class Pruned(NamedTuple):
    servers: int  # servers found dead (silent for an interval), their connections dropped
    connections: int
    offline: int  # users set offline, their grace period over or their server dead


def register_server(server_id: str, hostname: str, pid: int, doorbell: str = "") -> None:
    now = timezone.now()
    # update_or_create: a start that failed half-way is simply retried.
    ServerInstance.objects.update_or_create(
        id=server_id,
        defaults={
            "hostname": hostname,
            "pid": pid,
            "started_at": now,
            "heartbeat_at": now,
            "stopped_at": None,
            "doorbell": doorbell,
        },
    )
    prune_dead_servers()


def stop_server(server_id: str) -> int:
    """A clean shutdown (SIGTERM): forget our connections now; returns how many.

    Users left with no connection keep their status for the grace period, as
    after any close: the server closed their sockets with 4503, so clients
    reconnect at once, to another process or to this one restarted, and a
    deploy never shows them offline. If they do not come back, whichever
    process prunes next (any server's heartbeat, the presence API,
    ``realtime_prune``) sets them offline.
    """
    with transaction.atomic():
        return _drop_connections(Q(server_id=server_id), [server_id], grace=True)[1]


def server_heartbeat(server_id: str, local_ids: list[str], interval: float) -> Heartbeat:
    """This server is alive: one write of its own row, then prune the dead ones.

    Returns the local connections whose rows were deleted elsewhere. Rows of
    this server that the hub does not hold (a ``disconnect`` that never ran)
    and older than one interval (so not one being opened right now) are leaks:
    they are dropped, their users get the grace period.
    """
    now = timezone.now()
    revived = False
    if not ServerInstance.objects.filter(id=server_id, stopped_at__isnull=True).update(heartbeat_at=now):
        # Pruned as dead while alive (a stalled loop, a database outage): exist again.
        revived = True
        ServerInstance.objects.update_or_create(
            id=server_id,
            defaults={"heartbeat_at": now, "stopped_at": None},
            create_defaults={
                "heartbeat_at": now,
                "started_at": now,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
            },
        )
        logger.warning("server %s was taken for dead; its connections will reconnect", server_id[:8])
    rows = dict(Connection.objects.filter(server_id=server_id).values_list("id", "connected_at"))
    local = set(local_ids)
    leaked = [cid for cid, at in rows.items() if cid not in local and at < now - timedelta(seconds=interval)]
    if leaked:
        with transaction.atomic():
            _drop_connections(Q(id__in=leaked), [], grace=True)
    prune_dead_servers(interval)
    return Heartbeat([cid for cid in local_ids if cid not in rows], revived)


def prune_dead_servers(stale_after: float | None = None) -> Pruned:
    """Drop connections of servers silent for ``stale_after`` seconds (or stopped); their users go offline.

    The default, one heartbeat interval, is four server heartbeats: a live
    server is never pruned, and a dead one is within 1.25 x the interval by the
    next server that heartbeats. Also ends grace periods that a dead or stopped
    server could not end.
    """
    if stale_after is None:
        stale_after = float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"))
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after)
    grace_cutoff = now - timedelta(seconds=float(conf.get("WEBSOCKET_PRESENCE_GRACE")))
    with transaction.atomic():
        dead = list(
            ServerInstance.objects.filter(heartbeat_at__lt=cutoff, stopped_at__isnull=True).values_list("id", flat=True)
        )
        servers, connections, offline = (
            _drop_connections(Q(server_id__in=dead), dead, grace=False) if dead else (0, 0, 0)
        )
        # Rows of a server that had stopped already: a handshake that finished while
        # it shut down, after stop_server() cleared its rows. Its socket was closed
        # with the process, and a stopped server is never judged dead: drop them here,
        # with the grace period stop_server() gives (the client reconnects elsewhere).
        late = Q(server__stopped_at__isnull=False)
        if Connection.objects.filter(late).exists():
            _servers, late_connections, late_offline = _drop_connections(late, [], grace=True)
            connections += late_connections
            offline += late_offline
        # Grace periods whose server died or stopped before it could end them.
        for user_id in presence.expired_grace(grace_cutoff):
            offline += presence.finish_offline(user_id)
    ServerInstance.objects.filter(stopped_at__lt=now - timedelta(days=1)).delete()
    return Pruned(servers, connections, offline)


def _drop_connections(connections: Q, servers: list[str], *, grace: bool) -> tuple[int, int, int]:
    """Delete connection rows and mark ``servers`` stopped. Users left with none start
    their grace period (``grace``) or go offline at once (a dead server: its users
    were last seen up to an interval ago). Returns (servers, connections, offline)."""
    now = timezone.now()
    user_ids = set(Connection.objects.filter(connections, user__isnull=False).values_list("user_id", flat=True))
    count, _ = Connection.objects.filter(connections).delete()
    stopped = ServerInstance.objects.filter(id__in=servers).update(stopped_at=now) if servers else 0
    offline = 0
    for user_id in user_ids:
        if Connection.objects.filter(user_id=user_id).exists():
            continue
        if grace:
            presence.start_grace(user_id, now, seen=False)
        else:
            offline += presence.lost_with_server(user_id, now)
    if count or stopped:
        logger.info("dropped %d connections of %d stopped or dead server(s)", count, stopped)
    return stopped, count, offline
