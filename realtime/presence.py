"""Presence, live connections and server instances, as database rows (docs/protocol.md section 6).

A user is ``online`` from their first live connection until their last one
closes, then keeps their status for WEBSOCKET_PRESENCE_GRACE seconds (a page
reload never shows them offline), then goes ``offline`` with ``last_seen``.
Every change of status or activity is published on ``presence``. Rows of a
server that stops heartbeating are pruned by whichever process looks next.
Everything here is synchronous ORM code; the hub calls it from a thread.

Heartbeat writes are coalesced, never one per ping (the hub calls these):

- ``server_heartbeat`` every quarter interval: one UPDATE of the process's own
  ``ServerInstance`` row (one row per process, whatever its connection count),
  one SELECT of its connection ids, and a prune of dead servers. Liveness is
  judged on this row alone: a server silent for one interval is dead, so a
  killed server's users are offline within 1.25 x the interval (< 2 x).
- ``touch_connections`` at most once per interval: one UPDATE (per 500 ids) of
  ``Connection.last_heartbeat_at`` for the connections heard from since the
  previous touch, and one of ``Presence.last_seen`` for their users. So a
  connection's row is written at most once per interval, however often it
  pings, and ``last_heartbeat_at`` is the last sign of life to within one interval.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import conf
from .fanout import close_connections_threadsafe
from .models import Connection, Presence, ServerInstance
from .protocol import CLOSE_DISCONNECTED, iso, now_iso
from .publisher import publish

logger = logging.getLogger(__name__)

PRESENCE_CHANNEL = "presence"
# The sqlite3 backend allows 999 parameters per query; stay well under it.
CHUNK = 500


def presence_update(presence: Presence) -> dict:
    """The ``presence_update`` publication of section 4 (envelope added by publish)."""
    return {
        "type": "presence_update",
        "user_id": str(presence.user_id),
        "status": presence.status,
        "activity": presence.activity,
        "last_seen": iso(presence.last_seen),
        "timestamp": now_iso(),
    }


def presence_entry(presence: Presence) -> dict:
    return {
        "user_id": str(presence.user_id),
        "status": presence.status,
        "activity": presence.activity,
        "last_seen": iso(presence.last_seen),
    }


def _locked_presence(user_id) -> Presence:
    presence, _ = Presence.objects.select_for_update().get_or_create(user_id=user_id)
    return presence


def _save_and_publish(presence: Presence, before: tuple) -> bool:
    presence.save()
    if (presence.status, presence.activity) != before:
        publish(PRESENCE_CHANNEL, presence_update(presence))
        return True
    return False


# --- connections ------------------------------------------------------------


def connection_opened(
    *, connection_id: str, client_id: str, user_id, server_id: str, ip: str = "", user_agent: str = ""
) -> None:
    now = timezone.now()
    with transaction.atomic():
        Connection.objects.create(
            id=connection_id,
            client_id=client_id,
            user_id=user_id,
            server_id=server_id,
            ip=ip[:64],
            user_agent=user_agent[:300],
            connected_at=now,
            last_heartbeat_at=now,
        )
        if user_id is not None:
            user_online(user_id, now)


def connection_authenticated(connection_id: str, user_id) -> None:
    """An anonymous connection signed in with an ``auth`` message."""
    with transaction.atomic():
        Connection.objects.filter(id=connection_id).update(user_id=user_id)
        user_online(user_id)


def user_online(user_id, now: datetime | None = None) -> None:
    """A user gained a connection: online if they were offline, and no longer pending."""
    now = now or timezone.now()
    with transaction.atomic():
        presence = _locked_presence(user_id)
        before = (presence.status, presence.activity)
        if presence.status == "offline":
            presence.status, presence.activity = "online", None
        presence.offline_pending_since = None
        presence.last_seen = now
        _save_and_publish(presence, before)


def connection_closed(connection_id: str, user_id) -> bool:
    """Forget a connection. True when its user has none left (the grace period starts)."""
    with transaction.atomic():
        Connection.objects.filter(id=connection_id).delete()
        if user_id is None or Connection.objects.filter(user_id=user_id).exists():
            return False
        now = timezone.now()
        Presence.objects.filter(user_id=user_id).update(offline_pending_since=now, last_seen=now)
        return True


def disconnect_connections(connection_ids: list[str]) -> int:
    """The admin's "disconnect": forget the rows, close the sockets with 4403.

    Deleting the row is what reaches every process: the owning server closes a
    connection whose row vanished on its next heartbeat (a quarter interval).
    This process closes its own at once, and with Redis tells the others too.
    The users' grace period starts when their sockets close, as for any close.
    Returns how many rows there were.
    """
    deleted, _ = Connection.objects.filter(id__in=connection_ids).delete()
    transaction.on_commit(lambda: close_connections_threadsafe(connection_ids, CLOSE_DISCONNECTED))
    return deleted


def update_subscriptions(connection_id: str, channels: list[str]) -> None:
    Connection.objects.filter(id=connection_id).update(subscriptions=channels)


def finish_offline(user_id) -> bool:
    """Set a user offline if their grace period started and no connection came back."""
    with transaction.atomic():
        presence = Presence.objects.select_for_update().filter(user_id=user_id).first()
        if presence is None or presence.offline_pending_since is None:
            return False
        if Connection.objects.filter(user_id=user_id).exists():
            presence.offline_pending_since = None
            presence.save()
            return False
        before = (presence.status, presence.activity)
        presence.status, presence.activity = "offline", None
        presence.last_seen = presence.offline_pending_since
        presence.offline_pending_since = None
        return _save_and_publish(presence, before)


def set_status(user_id, status: str, activity: str | None) -> bool:
    """A ``presence`` message: away/busy/online with an optional activity. True if it changed."""
    with transaction.atomic():
        presence = _locked_presence(user_id)
        before = (presence.status, presence.activity)
        presence.status, presence.activity = status, activity
        presence.offline_pending_since = None
        presence.last_seen = timezone.now()
        return _save_and_publish(presence, before)


def presence_state() -> list[dict]:
    """Everyone not offline, for ``presence_state`` after subscribing to ``presence``."""
    return [presence_entry(p) for p in Presence.objects.exclude(status="offline").order_by("user_id")]


def presence_list():
    """Users with their presence and live connection count, for the HTTP API."""
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .select_related("presence")
        .annotate(connection_count=Count("connection"))
        .order_by("username")
    )


# --- server instances -------------------------------------------------------


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


def touch_connections(connection_ids: list[str]) -> None:
    """The coalesced ``last_heartbeat_at`` / ``last_seen`` write (at most once per interval)."""
    now = timezone.now()
    for start in range(0, len(connection_ids), CHUNK):
        chunk = connection_ids[start : start + CHUNK]
        Connection.objects.filter(id__in=chunk).update(last_heartbeat_at=now)
        Presence.objects.filter(user__connection__id__in=chunk).exclude(status="offline").update(last_seen=now)


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
        for user_id in Presence.objects.filter(offline_pending_since__lt=grace_cutoff).values_list(
            "user_id", flat=True
        ):
            offline += finish_offline(user_id)
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
            Presence.objects.filter(user_id=user_id).update(offline_pending_since=now)
        else:
            # Last seen at the dead server's last coalesced touch, not now.
            Presence.objects.filter(user_id=user_id).update(offline_pending_since=Coalesce("last_seen", Value(now)))
            offline += finish_offline(user_id)
    if count or stopped:
        logger.info("dropped %d connections of %d stopped or dead server(s)", count, stopped)
    return stopped, count, offline
