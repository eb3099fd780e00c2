"""Channel presence as database rows (docs/protocol.md section 10): who is on this issue.

One ``ChannelMember`` row per connection and channel; a member is a user, with
``connections`` = the count of their rows. Everything here is synchronous ORM
code; the per-process ``channel_tracker`` calls it from a thread and turns what
the rows say into ``channel_presence`` / ``channel_presence_diff`` frames.

What each change costs in writes (the bench checks it):

- join: one INSERT, or one UPDATE taking over a row of the same user that is
  in its reload grace (a page reload: no leave, no join);
- unsubscribe: one DELETE; activity: one UPDATE;
- a connection that ends: one UPDATE setting ``left_at`` on all its rows; the
  rows go at the first sweep after the grace (one DELETE for all that expired).
- a server that dies: its ``Connection`` rows are pruned by global presence
  (section 6); the next sweep deletes the rows whose connection is gone, with
  no grace, as global presence sets a dead server's users offline at once.

Django signals ``channel_joined``, ``channel_left`` and ``channel_activity``
(sender: the channel name; ``user_id``, ``activity``) fire once per change of
a member, in the process that writes the change.
"""

from __future__ import annotations

from datetime import timedelta

import django.dispatch
from django.db import transaction
from django.utils import timezone

from . import conf, registry
from .models import ChannelMember, Connection
from .protocol import iso

DEFAULT_ACTIVITY = "viewing"

channel_joined = django.dispatch.Signal()
channel_left = django.dispatch.Signal()
channel_activity = django.dispatch.Signal()


def has_presence(kind: str) -> bool:
    """Was this channel kind registered with channel presence (section 10)?"""
    entry = registry.get(kind)
    return entry is not None and entry.presence


def has_signals(kind: str) -> bool:
    """Was this channel kind registered with signals (section 11)?"""
    entry = registry.get(kind)
    return entry is not None and entry.signals


# --- members ----------------------------------------------------------------


def members(channels: list[str]) -> dict[str, dict[str, dict]]:
    """{channel: {user_id: entry}} for these channels, one query.

    An entry: user_id, username, activity (of the user's most recently changed
    row), since (their earliest row), connections (their rows, those in the
    reload grace included: a reload keeps the count).
    """
    from django.db.models import Count, Max, Min

    out: dict[str, dict[str, dict]] = {name: {} for name in channels}
    # Grouped in SQL by (user, activity): a user with 1,000 tabs is one row, not
    # 1,000 (every diff re-reads the channel, so this is most of its cost).
    rows = (
        ChannelMember.objects.filter(channel__in=channels)
        .values("channel", "user_id", "user__username", "activity")
        .annotate(n=Count("id"), first=Min("since"), changed=Max("updated_at"))
        .order_by("changed")
        .values_list("channel", "user_id", "user__username", "activity", "n", "first")
    )
    for channel, user_id, username, activity, n, since in rows:
        uid = str(user_id)
        entry = out[channel].get(uid)
        if entry is None:
            out[channel][uid] = {
                "user_id": uid,
                "username": username,
                "activity": activity,
                "since": since,
                "connections": n,
            }
        else:
            entry["activity"] = activity  # groups come oldest change first
            entry["since"] = min(entry["since"], since)
            entry["connections"] += n
    for by_user in out.values():
        for entry in by_user.values():
            entry["since"] = iso(entry["since"])
    return out


def then_members(change, args: tuple, channels: list[str]) -> dict[str, dict[str, dict]]:
    """Make one change (``join``, ``leave``), then read ``channels``' members: one trip to
    the database thread instead of two, which is most of a diff's latency."""
    change(*args)
    return members(channels)


def member_entry(channel: str, user_id) -> dict | None:
    """One user's entry on ``channel``, as ``members`` builds it (None: not a member).

    One query on that user's rows (the user index), where ``members`` reads the
    whole channel: what a process needs after a change of one of its own sockets.
    """
    rows = list(
        ChannelMember.objects.filter(channel=channel, user_id=user_id)
        .order_by("updated_at", "id")
        .values_list("activity", "since", "user__username")
    )
    if not rows:
        return None
    return {
        "user_id": str(user_id),
        "username": rows[-1][2],
        "activity": rows[-1][0],  # of their most recently changed row
        "since": iso(min(row[1] for row in rows)),
        "connections": len(rows),
    }


def then_entry(change, args: tuple, channel: str, user_id) -> dict | None:
    """Make one change of ``user_id``'s rows on ``channel``, then read their entry (one database trip)."""
    change(*args)
    return member_entry(channel, user_id)


def member_counts(kind: str) -> dict[str, int]:
    """{channel: number of members} of every channel of ``kind`` that has any (one query)."""
    from django.db.models import Count

    rows = (
        ChannelMember.objects.filter(channel__startswith=f"{kind}:")
        .values("channel")
        .annotate(users=Count("user_id", distinct=True))
        .values_list("channel", "users")
    )
    return dict(rows)


def held_counts() -> list[tuple[str, int]]:
    """(channel, live connections holding it with presence): the subscriptions that
    ``Connection.subscriptions`` leaves to these rows (a join is one write, not two)."""
    from django.db.models import Count

    rows = ChannelMember.objects.filter(left_at__isnull=True).values("channel").annotate(n=Count("id"))
    return list(rows.values_list("channel", "n"))


def held_by(connection_ids: list[str]) -> dict[str, list[str]]:
    """{connection id: channels it holds with presence} (one query)."""
    out: dict[str, list[str]] = {}
    rows = ChannelMember.objects.filter(connection_id__in=connection_ids, left_at__isnull=True)
    for connection_id, channel in rows.values_list("connection_id", "channel"):
        out.setdefault(connection_id, []).append(channel)
    return out


def member_list(channel: str) -> list[dict]:
    """The members of one channel, by username (the HTTP API, the snapshot)."""
    return sorted(members([channel])[channel].values(), key=lambda e: (e["username"], e["user_id"]))


def _user_rows(channel: str, user_id) -> list[tuple[str, str]]:
    return list(
        ChannelMember.objects.filter(channel=channel, user_id=user_id)
        .order_by("updated_at", "id")
        .values_list("activity", "connection_id")
    )


# --- changes ------------------------------------------------------------------


def join(channel: str, user_id, connection_id: str, server_id: str) -> bool:
    """This connection joins ``channel``'s presence. True when the user became a member."""
    now = timezone.now()
    with transaction.atomic():
        before = _user_rows(channel, user_id)
        if any(cid == connection_id for _, cid in before):
            return False  # subscribed again: already there
        # A row of this user whose connection ended within the grace: a reload. Take it over.
        pending = (
            ChannelMember.objects.filter(channel=channel, user_id=user_id, left_at__isnull=False)
            .order_by("-left_at")
            .values_list("id", flat=True)
            .first()
        )
        if pending is not None:
            ChannelMember.objects.filter(id=pending).update(
                connection_id=connection_id,
                server_id=server_id,
                left_at=None,
                activity=DEFAULT_ACTIVITY,
                updated_at=now,
            )
        else:
            ChannelMember.objects.create(
                channel=channel,
                user_id=user_id,
                connection_id=connection_id,
                server_id=server_id,
                activity=DEFAULT_ACTIVITY,
                since=now,
                updated_at=now,
            )
        after = _user_rows(channel, user_id)
    _fire(channel, user_id, before, after)
    return not before


def leave(channel: str, user_id, connection_id: str) -> bool:
    """An ``unsubscribe``: this connection leaves at once. True when the user is no member any more."""
    with transaction.atomic():
        before = _user_rows(channel, user_id)
        if not any(cid == connection_id for _, cid in before):
            return False
        ChannelMember.objects.filter(channel=channel, connection_id=connection_id).delete()
        after = [row for row in before if row[1] != connection_id]
    _fire(channel, user_id, before, after)
    return not after


def set_activity(channel: str, user_id, connection_id: str, activity: str | None) -> bool:
    """This connection's activity on ``channel`` (None: the default). False if it holds no presence there."""
    activity = activity or DEFAULT_ACTIVITY
    with transaction.atomic():
        before = _user_rows(channel, user_id)
        if not any(cid == connection_id for _, cid in before):
            return False
        ChannelMember.objects.filter(channel=channel, connection_id=connection_id).update(
            activity=activity, updated_at=timezone.now()
        )
        after = _user_rows(channel, user_id)
    _fire(channel, user_id, before, after)
    return True


def connection_closed(connection_id: str) -> int:
    """A connection ended: its rows keep their place for the reload grace. Returns how many."""
    return ChannelMember.objects.filter(connection_id=connection_id, left_at__isnull=True).update(
        left_at=timezone.now()
    )


def server_stopped(server_id: str) -> int:
    """A clean shutdown: every row of this server starts its grace (clients reconnect elsewhere)."""
    return ChannelMember.objects.filter(server_id=server_id, left_at__isnull=True).update(left_at=timezone.now())


def sweep() -> list[str]:
    """Delete rows past their grace, and rows whose connection is gone (a dead server).

    Any process may run it (each server's tracker does, the HTTP API does);
    returns the channels that changed. The rows are locked (PostgreSQL) or the
    write lock taken (SQLite) first, so two sweepers never both report one leave.
    """
    grace_cutoff = timezone.now() - timedelta(seconds=float(conf.get("WEBSOCKET_PRESENCE_GRACE")))
    # A row a moment old may belong to a connection whose own row is being written.
    orphan_cutoff = timezone.now() - timedelta(seconds=2)
    expired = ChannelMember.objects.filter(left_at__lt=grace_cutoff)
    orphaned = ChannelMember.objects.filter(left_at__isnull=True, updated_at__lt=orphan_cutoff).exclude(
        connection_id__in=Connection.objects.values("id")
    )
    # A read first: most sweeps find nothing, and need not take SQLite's write lock for that.
    if not (expired | orphaned).exists():
        return []
    with transaction.atomic():
        gone = list((expired | orphaned).select_for_update(skip_locked=True).values_list("id", "channel", "user_id"))
        if not gone:
            return []
        ChannelMember.objects.filter(id__in=[row[0] for row in gone]).delete()
        touched = {(channel, user_id) for _, channel, user_id in gone}
        still = set(
            ChannelMember.objects.filter(
                channel__in={c for c, _ in touched}, user_id__in={u for _, u in touched}
            ).values_list("channel", "user_id")
        )
    for channel, user_id in touched - still:
        channel_left.send(sender=channel, user_id=str(user_id), activity=None)
    return sorted({channel for channel, _ in touched})


def _fire(channel: str, user_id, before: list[tuple[str, str]], after: list[tuple[str, str]]) -> None:
    """The Django signals for one member's change, from their rows before and after."""
    uid = str(user_id)
    if not before and after:
        channel_joined.send(sender=channel, user_id=uid, activity=after[-1][0])
    elif before and not after:
        channel_left.send(sender=channel, user_id=uid, activity=None)
    elif before and after and before[-1][0] != after[-1][0]:
        channel_activity.send(sender=channel, user_id=uid, activity=after[-1][0])
