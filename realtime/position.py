"""The ``Realtime-Position`` header (docs/protocol.md section 12): load, then go live without a gap.

A view that serves state a channel carries changes of reads that state and the
channel's latest ``seq`` in one database snapshot (``read_snapshot``), and
answers with ``Realtime-Position: issues=131`` (``position_header``). Since a
publication is stored in the same transaction as the change it announces, a
client that applies the response and subscribes with ``since`` = that seq gets
every change after the snapshot and none before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from .models import ChannelSequence

HEADER = "Realtime-Position"


@contextmanager
def read_snapshot(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Every query inside sees one snapshot of the database.

    PostgreSQL's default READ COMMITTED takes a snapshot per statement, so the
    block runs as REPEATABLE READ (one snapshot for the whole transaction).
    SQLite (WAL) gives a read transaction one snapshot; it is opened with a
    plain BEGIN, not ``atomic()``, because our SQLite settings make ``atomic()``
    BEGIN IMMEDIATE, which would take the write lock for a read. Inside an
    existing transaction the snapshot is already that transaction's.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        yield
        return
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("BEGIN DEFERRED")
        try:
            yield
        finally:
            # Read-only: ROLLBACK ends it as COMMIT would, and never fails on a write conflict.
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        return
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def positions(channels: Iterable[str]) -> dict[str, int]:
    """The latest seq of each channel (0 for one that has none), in the caller's snapshot."""
    names = list(channels)
    found = dict(ChannelSequence.objects.filter(channel__in=names).values_list("channel", "last_seq"))
    return {name: found.get(name, 0) for name in names}


def position_header(channels: Iterable[str]) -> str:
    """``issues=131`` or ``issue:123=57,issues=131``: the header's value."""
    return ",".join(f"{name}={seq}" for name, seq in positions(channels).items())


def parse_position(value: str) -> dict[str, int]:
    """The header's value back into {channel: seq} (for clients and tests)."""
    out: dict[str, int] = {}
    for part in value.split(","):
        name, _, seq = part.strip().rpartition("=")
        if name and seq.isdigit():
            out[name] = int(seq)
    return out


class PositionMixin:
    """For DRF viewsets: ``list`` and ``retrieve`` read their data and the position in one snapshot.

    ``position_channels(action, kwargs)`` names the channels; the view's app
    decides which (realtime knows nothing of issues or alerts).
    """

    def position_channels(self) -> list[str]:
        raise NotImplementedError

    def _with_position(self, handler, request, *args, **kwargs):
        with read_snapshot():
            response = handler(request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                # Rendering reads nothing more: the serializer's data is built already.
                response[HEADER] = position_header(self.position_channels())
        return response

    def list(self, request, *args, **kwargs):
        return self._with_position(super().list, request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        return self._with_position(super().retrieve, request, *args, **kwargs)
