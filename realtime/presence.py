"""A user's presence: the ``Presence`` row and its ``presence_update`` publications (docs/protocol.md section 6).

A user is ``online`` from their first live connection until their last one
closes, then keeps their status for WEBSOCKET_PRESENCE_GRACE seconds (a page
reload never shows them offline), then goes ``offline`` with ``last_seen``.
Every change of status or activity is published on ``presence``; nothing else
is. This module writes every ``Presence`` row; the connection rows that drive
it live in ``realtime.connections``, the servers' in ``realtime.instances``.
Everything here is synchronous ORM code; the hub calls it from a thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Connection, Presence
from .protocol import iso, now_iso
from .publisher import publish

PRESENCE_CHANNEL = "presence"


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


def users_online(user_ids: Iterable, now: datetime) -> None:
    """``user_online`` for many users: one SELECT and one UPDATE for those already
    online, away or busy (a reconnect storm's users), ``user_online`` each for the
    rest (they go online, which is published)."""
    ids = sorted({str(user_id) for user_id in user_ids})
    with transaction.atomic():
        # Locked in user order, as one user_online call after another would (PostgreSQL).
        present = {
            str(user_id)
            for user_id in Presence.objects.select_for_update()
            .filter(user_id__in=ids)
            .exclude(status="offline")
            .order_by("user_id")
            .values_list("user_id", flat=True)
        }
        if present:
            Presence.objects.filter(user_id__in=present).update(
                offline_pending_since=None, last_seen=now, updated_at=now
            )
        for user_id in ids:
            if user_id not in present:
                user_online(user_id, now)


def start_grace(user_id, now: datetime, *, seen: bool) -> None:
    """A user's last connection went: their grace period starts ``now`` (last seen now too if ``seen``)."""
    fields: dict = {"offline_pending_since": now}
    if seen:
        fields["last_seen"] = now
    Presence.objects.filter(user_id=user_id).update(**fields)


def lost_with_server(user_id, now: datetime) -> int:
    """A user's last connection died with its server: offline at once, last seen at its
    server's last coalesced touch (``realtime.connections.touch_connections``), not now.
    Returns 1 if they went offline."""
    Presence.objects.filter(user_id=user_id).update(offline_pending_since=Coalesce("last_seen", Value(now)))
    return int(finish_offline(user_id))


def start_grace_many(user_ids: Iterable, now: datetime) -> None:
    """``start_grace(seen=True)`` for many users, in one UPDATE."""
    Presence.objects.filter(user_id__in=list(user_ids)).update(offline_pending_since=now, last_seen=now)


def seen_through(connection_ids: Iterable[str], now: datetime) -> None:
    """The users of these connections were heard from: ``last_seen`` (one UPDATE)."""
    Presence.objects.filter(user__connection__id__in=connection_ids).exclude(status="offline").update(last_seen=now)


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


def expired_grace(cutoff: datetime) -> list:
    """Users whose grace period started before ``cutoff`` (their server could not end it)."""
    return list(Presence.objects.filter(offline_pending_since__lt=cutoff).values_list("user_id", flat=True))


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
