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

from typing import Any

from django.db import DatabaseError, transaction
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
        row = _row(
            connection_id=connection_id, client_id=client_id, user_id=user_id,
            server_id=server_id, ip=ip, user_agent=user_agent, now=now,
        )  # fmt: skip
        row.save(force_insert=True)
        if user_id is not None:
            presence.user_online(user_id, now)


def connections_opened(rows: list[dict]) -> list[Exception | None]:
    """``connection_opened(**row)`` for each row, in one transaction: one INSERT per
    ~100 rows and the users' presence in two statements (``presence.users_online``).
    Returns None per row, or the error of a row that could not be written: if the
    batch fails, each row is tried alone, so one bad row fails only its own."""
    try:
        now = timezone.now()
        with transaction.atomic():
            Connection.objects.bulk_create([_row(now=now, **row) for row in rows])
            users = [row["user_id"] for row in rows if row["user_id"] is not None]
            if users:
                presence.users_online(users, now)
        return [None] * len(rows)
    except DatabaseError:
        if len(rows) == 1:
            raise
    return [_alone(connection_opened, row) for row in rows]


def _row(*, connection_id: str, client_id: str, user_id, server_id: str, ip: str = "", user_agent: str = "", now):
    return Connection(
        id=connection_id,
        client_id=client_id,
        user_id=user_id,
        server_id=server_id,
        ip=ip[:64],
        user_agent=user_agent[:300],
        connected_at=now,
        last_heartbeat_at=now,
    )


def _alone(func, row: dict) -> Exception | None:
    try:
        func(**row)
    except DatabaseError as exc:
        return exc
    return None


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


def connections_closed(items: list[tuple[str, Any]]) -> list[bool]:
    """``connection_closed`` for each (connection_id, user_id), in one transaction of
    three statements (per 500): True for the first item of each user left with none."""
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, len(items), CHUNK):
            Connection.objects.filter(id__in=[cid for cid, _ in items[start : start + CHUNK]]).delete()
        users = list({str(user_id) for _, user_id in items if user_id is not None})
        still = {
            str(user_id)
            for user_id in Connection.objects.filter(user_id__in=users).values_list("user_id", flat=True).distinct()
        }
        left = [user_id for user_id in users if user_id not in still]
        if left:
            presence.start_grace_many(left, now)
    told: set[str] = set()
    out = []
    for _, user_id in items:
        last = user_id is not None and str(user_id) in left and str(user_id) not in told
        if last:
            told.add(str(user_id))
        out.append(last)
    return out


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


def subscriptions_updated(items: list[tuple[str, list[str]]]) -> list[None]:
    """``update_subscriptions`` for each (connection_id, channels), the last of a
    connection winning: one UPDATE per ~500 rows (``bulk_update``)."""
    latest = dict(items)
    Connection.objects.bulk_update(
        [Connection(id=cid, subscriptions=channels) for cid, channels in latest.items()], ["subscriptions"]
    )
    return [None] * len(items)


def touch_connections(connection_ids: list[str]) -> None:
    """The coalesced ``last_heartbeat_at`` / ``last_seen`` write (at most once per interval)."""
    now = timezone.now()
    for start in range(0, len(connection_ids), CHUNK):
        chunk = connection_ids[start : start + CHUNK]
        Connection.objects.filter(id__in=chunk).update(last_heartbeat_at=now)
        presence.seen_through(chunk, now)
