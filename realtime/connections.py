"""Live connections as ``Connection`` rows: opened, signed in, subscribed, heard from, closed.

A connection's row is what every process sees of it: the admin's "disconnect"
deletes it, and the owning server closes a socket whose row vanished. The
user's presence follows the rows (``realtime.presence``): online with the
first, the grace period after the last.

Heartbeat writes are coalesced, never one per ping: the hub calls
``touch_connections`` at most once per interval, one UPDATE (per 500 ids) of
``Connection.last_heartbeat_at`` for the connections heard from since the
previous touch, and one of ``Presence.last_seen`` for their users. So a
connection's row is written at most once per interval, however often it pings,
and ``last_heartbeat_at`` is the last sign of life to within one interval.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from . import presence
from .fanout import close_connections_threadsafe
from .models import Connection
from .protocol import CLOSE_DISCONNECTED

# The sqlite3 backend allows 999 parameters per query; stay well under it.
CHUNK = 500


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
            presence.user_online(user_id, now)


def connection_authenticated(connection_id: str, user_id) -> None:
    """An anonymous connection signed in with an ``auth`` message."""
    with transaction.atomic():
        Connection.objects.filter(id=connection_id).update(user_id=user_id)
        presence.user_online(user_id)


def connection_closed(connection_id: str, user_id) -> bool:
    """Forget a connection. True when its user has none left (the grace period starts)."""
    with transaction.atomic():
        Connection.objects.filter(id=connection_id).delete()
        if user_id is None or Connection.objects.filter(user_id=user_id).exists():
            return False
        presence.start_grace(user_id, timezone.now(), seen=True)
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


def touch_connections(connection_ids: list[str]) -> None:
    """The coalesced ``last_heartbeat_at`` / ``last_seen`` write (at most once per interval)."""
    now = timezone.now()
    for start in range(0, len(connection_ids), CHUNK):
        chunk = connection_ids[start : start + CHUNK]
        Connection.objects.filter(id__in=chunk).update(last_heartbeat_at=now)
        presence.seen_through(chunk, now)
