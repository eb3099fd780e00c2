"""The one way out: ``publish(channel, message)`` and the stored history behind it.

A publication is stored in the caller's transaction with the next contiguous
``seq`` of its channel, and fanned out only after that transaction commits: a
rolled-back save publishes nothing, a committed one is in the store even if the
process dies before the fan-out, and clients recover it with ``since``. A fan-out
failure (the channel layer is down) is logged and never fails the caller.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from . import conf, doorbell, fanout
from .models import ChannelSequence, Message
from .protocol import encode, envelope, iso_utc, parse_channel, utf8_len
from .sizes import max_publication_size

logger = logging.getLogger(__name__)


class PublicationTooLarge(ValueError):
    """``publish()`` of a message over ``REALTIME_MAX_PUBLICATION_SIZE`` bytes encoded.

    Raised before anything is stored and without using a ``seq``: every client
    could not be sent it (section 5), so no client is.
    """

    def __init__(self, channel: str, size: int, limit: int) -> None:
        super().__init__(
            f"publication on {channel} is {size} bytes encoded, over REALTIME_MAX_PUBLICATION_SIZE ({limit})"
        )
        self.channel = channel
        self.size = size
        self.limit = limit


def publish(channel: str, message: dict) -> dict:
    """Store ``message`` on ``channel`` and deliver it after commit; returns it with its envelope.

    ``message`` needs a ``type``; ``channel``, ``seq`` and ``ts`` are set here.
    Call it inside the transaction of the change it announces. Raises
    ``PublicationTooLarge`` (a ValueError) past REALTIME_MAX_PUBLICATION_SIZE and
    ValueError for NaN or Infinity, in both cases with nothing stored.
    """
    channel = parse_channel(channel).name
    if not isinstance(message.get("type"), str):
        raise ValueError("a publication needs a string 'type'")
    bell = doorbell.kind()
    origin = _origin()
    with transaction.atomic():
        seq = _next_seq(channel, origin if bell == "postgresql" else None)
        created_at = timezone.now()
        full = envelope(message, channel=channel, seq=seq, ts=iso_utc(created_at))
        text = encode(full)
        size, limit = utf8_len(text), max_publication_size()
        if size > limit:
            # Raised inside the atomic block: the seq taken above is rolled back with it.
            raise PublicationTooLarge(channel, size, limit)
        _insert(channel, seq, full["type"], text, created_at)
        transaction.on_commit(partial(_fan_out, channel, seq, text, bell == "udp", origin))
    return full


def _insert(channel: str, seq: int, type_: str, text: str, created_at) -> None:
    """The Message row, as one plain INSERT where we know the SQL: the ORM's
    ``create()`` cost more CPU than the write itself on the publish path (bench/README.md)."""
    connection = connections[router.db_for_write(Message)]
    if connection.vendor not in ("sqlite", "postgresql"):
        Message.objects.create(channel=channel, seq=seq, type=type_, payload=text, created_at=created_at)
        return
    quote = connection.ops.quote_name
    fields = ("channel", "seq", "type", "payload", "created_at")
    columns = ", ".join(quote(Message._meta.get_field(name).column) for name in fields)  # type: ignore[union-attr,arg-type]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) VALUES (%s, %s, %s, %s, %s)",
            [channel, seq, type_, text, connection.ops.adapt_datetimefield_value(created_at)],
        )


def _origin() -> str:
    """This process's server id if it serves sockets (its own rings are not for it), else ""."""
    hub = fanout.local()
    return hub.server_id if hub is not None else ""


def _next_seq(channel: str, notify_origin: str | None = None) -> int:
    """The next seq of ``channel``. The UPDATE's row lock (PostgreSQL) or write lock
    (SQLite) is held to commit, so concurrent publishers get contiguous numbers in
    commit order. With ``notify_origin`` (PostgreSQL) the doorbell's NOTIFY is
    sent in the same statement; PostgreSQL delivers it at commit."""
    seq = _increment(channel, notify_origin)
    if seq is None:
        try:
            with transaction.atomic():
                ChannelSequence.objects.create(channel=channel, last_seq=1)
        except IntegrityError:  # another publisher created it first
            seq = _increment(channel, notify_origin)
            assert seq is not None  # the row exists now
            return seq
        if notify_origin is not None:
            with connections[router.db_for_write(ChannelSequence)].cursor() as cursor:
                cursor.execute(
                    "SELECT pg_notify(%s, %s)", [doorbell.PG_CHANNEL, doorbell.encode_ring(notify_origin, channel, 1)]
                )
        return 1
    return seq


def _increment(channel: str, notify_origin: str | None = None) -> int | None:
    """last_seq + 1 for an existing row, else None: one round trip where the
    database has UPDATE ... RETURNING (SQLite 3.35+, PostgreSQL), two elsewhere."""
    connection = connections[router.db_for_write(ChannelSequence)]
    if connection.vendor in ("sqlite", "postgresql"):
        table = connection.ops.quote_name(ChannelSequence._meta.db_table)
        returning, params = "last_seq", [channel]
        if notify_origin is not None:
            # The ring "<origin>\n<channel>\n<seq>" (doorbell.encode_ring), built by PostgreSQL.
            returning += ", pg_notify(%s, %s || channel || %s || last_seq::text)"
            params = [channel, doorbell.PG_CHANNEL, notify_origin + "\n", "\n"]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET last_seq = last_seq + 1 WHERE channel = %s RETURNING {returning}", params
            )
            row = cursor.fetchone()
        return row[0] if row else None
    if not ChannelSequence.objects.filter(channel=channel).update(last_seq=F("last_seq") + 1):
        return None
    return ChannelSequence.objects.values_list("last_seq", flat=True).get(channel=channel)


def _fan_out(channel: str, seq: int, text: str, ring_udp: bool = False, origin: str = "") -> None:
    from .interest import channel_group

    if ring_udp:
        try:
            doorbell.ring_after_commit(origin, channel, seq)
        except Exception:
            logger.warning("doorbell of %s#%s failed; the pollers deliver it", channel, seq, exc_info=True)
    hub = fanout.local()
    if hub is not None:
        hub.deliver_threadsafe(channel, seq, text)
        if hub.layer_is_local:
            return
        # Never wait for Redis on the caller's thread in a server process (the
        # consumers' shared database thread): the hub's loop sends it.
        if hub.group_send_threadsafe(channel_group(channel), fanout.publish_message(channel, seq, text)):
            return
    # To the processes with local subscribers of the channel only (realtime/interest.py).
    # In-process layer and no server here: a server picks it up from the store. A
    # layer that is down: stored already, live clients get it from the servers'
    # pollers, others by resume (one warning for the outage, not one per publication).
    if not fanout.send_from_thread(fanout.publish_message(channel, seq, text), channel_group(channel)):
        logger.debug("fan-out of %s#%s left to the pollers", channel, seq)


# --- history ----------------------------------------------------------------


def latest_seq(channel: str) -> int:
    return ChannelSequence.objects.filter(channel=channel).values_list("last_seq", flat=True).first() or 0


def history(channel: str, since: int, limit: int) -> tuple[list[tuple[int, str]], bool, int]:
    """Stored frames of ``channel`` with seq > ``since`` (at most ``limit``, oldest first).

    Returns ([(seq, frame)], recovered, latest): ``recovered`` is False when messages
    after ``since`` are gone from the store, so the client must reload its state.
    """
    latest = latest_seq(channel)
    # Only the newest REALTIME_HISTORY_SIZE are kept, whether or not prune ran yet.
    floor = latest - int(conf.get("REALTIME_HISTORY_SIZE"))
    rows = list(
        Message.objects.filter(channel=channel, seq__gt=max(since, floor), created_at__gte=_ttl_cutoff())
        .order_by("seq")
        .values_list("seq", "payload")[:limit]
    )
    if since >= latest:
        recovered = True
    elif rows:
        recovered = since >= floor and rows[0][0] == since + 1
    else:
        recovered = False
    return rows, recovered, latest


def messages_between(channel: str, after: int, before: int) -> list[tuple[int, str]]:
    return list(
        Message.objects.filter(channel=channel, seq__gt=after, seq__lt=before)
        .order_by("seq")
        .values_list("seq", "payload")
    )


def stored_after(known: dict[str, int], limit: int = 1000) -> list[tuple[str, int, str]]:
    """Stored frames newer than ``known[channel]`` on those channels, in seq order per channel."""
    out: list[tuple[str, int, str]] = []
    names = list(known)
    for start in range(0, len(names), 500):  # SQLite allows 999 parameters a query
        latest = ChannelSequence.objects.filter(channel__in=names[start : start + 500]).values_list(
            "channel", "last_seq"
        )
        for channel, last_seq in latest:
            if last_seq > known[channel]:
                rows = (
                    Message.objects.filter(channel=channel, seq__gt=known[channel])
                    .order_by("seq")
                    .values_list("seq", "payload")[:limit]
                )
                out.extend((channel, seq, payload) for seq, payload in rows)
    return out


def _ttl_cutoff():
    return timezone.now() - timedelta(seconds=int(conf.get("REALTIME_HISTORY_TTL")))


def prune_history() -> int:
    """Delete messages past REALTIME_HISTORY_TTL and beyond REALTIME_HISTORY_SIZE per channel."""
    deleted, _ = Message.objects.filter(created_at__lt=_ttl_cutoff()).delete()
    size = int(conf.get("REALTIME_HISTORY_SIZE"))
    for channel, last in ChannelSequence.objects.values_list("channel", "last_seq"):
        deleted += Message.objects.filter(channel=channel, seq__lte=last - size).delete()[0]
    return deleted
