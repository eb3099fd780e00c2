"""Presence, live connections and server instances, as database rows (PROTOCOL.md section 6).

A user is ``online`` from their first live connection until their last one
closes, then keeps their status for WEBSOCKET_PRESENCE_GRACE seconds (a page
reload never shows them offline), then goes ``offline`` with ``last_seen``.
Every change of status or activity is published on ``presence``. Rows of a
server that stops heartbeating are pruned by whichever process looks next.
Everything here is synchronous ORM code; the hub calls it from a thread.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from . import conf
from .models import Connection, Presence, ServerInstance
from .protocol import iso, now_iso
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


def register_server(server_id: str, hostname: str, pid: int) -> None:
    now = timezone.now()
    ServerInstance.objects.create(id=server_id, hostname=hostname, pid=pid, started_at=now, heartbeat_at=now)
    prune_dead_servers()


def stop_server(server_id: str) -> None:
    """A clean shutdown: our connections are gone now, without a grace period."""
    with transaction.atomic():
        _drop_server_connections(Q(id=server_id))


def heartbeat(server_id: str, connection_ids: list[str], interval: float) -> list[str]:
    """One coalesced write for every local connection; returns ids whose rows vanished.

    Also the moment this server prunes servers that stopped heartbeating and
    ends grace periods that a dead server could not end.
    """
    now = timezone.now()
    ServerInstance.objects.filter(id=server_id).update(heartbeat_at=now)
    existing: set[str] = set()
    for start in range(0, len(connection_ids), CHUNK):
        chunk = connection_ids[start : start + CHUNK]
        Connection.objects.filter(id__in=chunk).update(last_heartbeat_at=now)
        existing.update(Connection.objects.filter(id__in=chunk).values_list("id", flat=True))
    Presence.objects.filter(user__connection__server_id=server_id).exclude(status="offline").update(last_seen=now)
    prune_dead_servers(interval)
    return [cid for cid in connection_ids if cid not in existing]


def prune_dead_servers(stale_after: float | None = None) -> int:
    """Drop connections of servers silent for ``stale_after`` seconds; their users go offline.

    The default, one heartbeat interval, is twice the heartbeat write period, so
    a live server is never pruned and a dead one is within 2 x the interval.
    """
    if stale_after is None:
        stale_after = float(conf.get("WEBSOCKET_HEARTBEAT_INTERVAL"))
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_after)
    grace_cutoff = now - timedelta(seconds=float(conf.get("WEBSOCKET_PRESENCE_GRACE")))
    with transaction.atomic():
        pruned = _drop_server_connections(Q(heartbeat_at__lt=cutoff, stopped_at__isnull=True))
        # Grace periods whose server died before it could end them.
        for user_id in Presence.objects.filter(offline_pending_since__lt=grace_cutoff).values_list(
            "user_id", flat=True
        ):
            finish_offline(user_id)
    ServerInstance.objects.filter(stopped_at__lt=now - timedelta(days=1)).delete()
    return pruned


def _drop_server_connections(servers: Q) -> int:
    dead = list(ServerInstance.objects.filter(servers).values_list("id", flat=True))
    if not dead:
        return 0
    user_ids = set(Connection.objects.filter(server_id__in=dead, user__isnull=False).values_list("user_id", flat=True))
    count, _ = Connection.objects.filter(server_id__in=dead).delete()
    ServerInstance.objects.filter(id__in=dead).update(stopped_at=timezone.now())
    now = timezone.now()
    for user_id in user_ids:
        if not Connection.objects.filter(user_id=user_id).exists():
            Presence.objects.filter(user_id=user_id).update(offline_pending_since=now)
            finish_offline(user_id)
    if count:
        logger.info("pruned %d connections of %d stopped or dead server(s)", count, len(dead))
    return count
