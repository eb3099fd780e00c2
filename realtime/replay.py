"""Shared history reads: concurrent replays of one channel are answered by one read.

After a restart every client resumes with ``since`` at once, and a thousand
subscribes of one channel would each run the same history query on the
consumers' one database thread. ``history(channel, since, limit)`` is
``publisher.history`` for async callers, with the requests of a channel that
arrive while its read waits for that thread gathered into that read: one
``latest`` query and at most one message query for all of them, from the
lowest ``since``, each caller answered with exactly the rows, ``recovered``
and ``latest`` that its own ``publisher.history`` call would have returned at
the moment of the read (the 1 MiB split and ``more`` are the caller's, as before).

The one rule: a caller is answered only by a read that *starts after it
asked* (``realtime.coalesce``). The consumer subscribes to the hub before
asking and holds the hub's pushes until its replay is done; a publication
committed after the read started reaches it through those pushes, one
committed before is in the read.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from . import conf
from .coalesce import Coalescer
from .models import Message
from .publisher import latest_seq

Rows = list[tuple[int, str]]


async def history(channel: str, since: int, limit: int) -> tuple[Rows, bool, int]:
    """``publisher.history(channel, since, limit)``, sharing the read with concurrent callers."""
    return await reads(channel, (since, limit))


def read_shared(channel: str, wants: list[tuple[int, int]]) -> list[tuple[Rows, bool, int]]:
    """``publisher.history(channel, since, limit)`` for each (since, limit) of ``wants``,
    in at most two queries: ``latest``, then the rows of the callers who are behind."""
    latest = latest_seq(channel)
    size = int(conf.get("REALTIME_HISTORY_SIZE"))
    # As publisher.history: only the newest REALTIME_HISTORY_SIZE are kept, whether or not prune ran yet.
    floor = latest - size
    rows = _rows(channel, wants, latest, floor, size)
    return [answer(rows, since, limit, latest, floor) for since, limit in wants]


reads = Coalescer(read_shared, wait_turn=True)


def _rows(channel: str, wants: list[tuple[int, int]], latest: int, floor: int, size: int) -> Rows:
    """One read that holds every caller's rows: from the lowest ``since``, long enough for all.

    A caller at ``since`` s wanting ``limit`` L needs the first L rows after s;
    the read starts at the lowest since, so it needs at most s - low rows more
    for that caller (seqs are distinct integers). Past ``size`` rows it would
    read every row kept (there are at most ``size`` above the floor).
    """
    behind = [(min(since, latest), limit) for since, limit in wants if since < latest]
    if not behind:
        return []  # everyone is up to date: the ``latest`` query was enough
    low = max(min(since for since, _ in behind), floor)
    need = min(size, max(limit + max(since, floor) - low for since, limit in behind))
    cutoff = timezone.now() - timedelta(seconds=int(conf.get("REALTIME_HISTORY_TTL")))
    return list(
        Message.objects.filter(channel=channel, seq__gt=low, created_at__gte=cutoff)
        .order_by("seq")
        .values_list("seq", "payload")[:need]
    )


def answer(rows: Rows, since: int, limit: int, latest: int, floor: int) -> tuple[Rows, bool, int]:
    """One caller's part of a shared read, as ``publisher.history`` computes it."""
    after = max(since, floor)
    mine = [row for row in rows if row[0] > after][:limit]
    if since >= latest:
        recovered = True
    elif mine:
        recovered = since >= floor and mine[0][0] == since + 1
    else:
        recovered = False
    return mine, recovered, latest
