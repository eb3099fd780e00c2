"""Ingesting error events: group by fingerprint, count exactly, announce without flooding.

``ingest_event()`` is the one way in (the ``POST /api/events/`` view calls it).
In one transaction it finds or creates the issue of the event's fingerprint
(derived from title and culprit when the event brings none), bumps
``event_count`` and ``last_seen`` with a single ``UPDATE ... SET event_count =
event_count + 1`` (the database serialises concurrent bumps, so no count is
lost), records an ``Event`` row for threshold alerts, and sends
``event_ingested`` for the alerts app to check its rules.

Coalescing. A burst of events must not flood clients with one ``issue_update``
per event, so count bumps of one issue are announced at most once per
``ISSUES_COUNT_COALESCE_SECONDS`` (default 1 s):

- the first bump after a quiet window is announced at once, in the event's
  transaction, as an ``updated`` with ``changes`` of ``event_count`` and
  ``last_seen`` since the previous announcement;
- bumps inside the window are not announced themselves; after commit, the
  process schedules one trailing flush per issue at the window's end, which
  announces the latest count if it moved. So the last count of a burst
  arrives at most one window late, and a client sees at most about one count
  update per issue per window.

A flush that is lost (the process is killed inside the window) is made up by
the issue's next event, whose announcement reports the change since the last
one; the stored ``event_count`` is exact either way. Creating an issue
announces ``created`` (with count 1) through the model's own signals.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from .messages import wire
from .models import Event, Issue, derive_fingerprint
from .publishing import publish_issue_change, state_of

logger = logging.getLogger(__name__)

# Sent inside the event's transaction with issue, created (bool) and event:
# the alerts app checks its rules here, so a trigger commits with its event.
event_ingested = Signal()


@dataclass(frozen=True)
class IngestResult:
    issue: Issue
    created: bool
    event_count: int


def coalesce_seconds() -> float:
    return float(getattr(settings, "ISSUES_COUNT_COALESCE_SECONDS", 1.0))


def ingest_event(
    *, title: str, culprit: str = "", level: str = "error", fingerprint: str | None = None
) -> IngestResult:
    """Group one event into its issue, count it, and check alerts; all in one transaction."""
    fingerprint = fingerprint or derive_fingerprint(title, culprit)
    now = timezone.now()
    with transaction.atomic():
        issue, created = _issue_for(fingerprint, title=title, culprit=culprit, level=level, now=now)
        if not created:
            Issue.objects.filter(pk=issue.pk).update(event_count=F("event_count") + 1, last_seen=now, updated_at=now)
            issue.refresh_from_db()
        event = Event.objects.create(issue=issue, level=level, received_at=now)
        if not created:
            _announce_or_defer(issue, now)
        event_ingested.send(sender=Event, issue=issue, created=created, event=event)
    return IngestResult(issue=issue, created=created, event_count=issue.event_count)


def _issue_for(fingerprint: str, *, title: str, culprit: str, level: str, now) -> tuple[Issue, bool]:
    issue = Issue.objects.filter(fingerprint=fingerprint).first()
    if issue is not None:
        return issue, False
    try:
        # A savepoint: losing the race to a concurrent creator rolls back our
        # insert and its `created` message, and we count on the winner's row.
        with transaction.atomic():
            issue = Issue.objects.create(
                title=title[:255],
                culprit=culprit[:255],
                level=level,
                fingerprint=fingerprint,
                event_count=1,
                first_seen=now,
                last_seen=now,
                # `created` announces count 1: the next announcement starts from there.
                announced_count=1,
                announced_last_seen=now,
                announced_at=now,
            )
        return issue, True
    except IntegrityError:
        return Issue.objects.get(fingerprint=fingerprint), False


def _announce_or_defer(issue: Issue, now) -> None:
    window = timedelta(seconds=coalesce_seconds())
    quiet = Q(announced_at__isnull=True) | Q(announced_at__lte=now - window)
    if Issue.objects.filter(pk=issue.pk).filter(quiet).update(announced_at=now):
        _announce(issue, now)
        return
    delay = max(0.0, (issue.announced_at + window - now).total_seconds()) if issue.announced_at else 0.0
    transaction.on_commit(lambda: schedule_flush(issue.pk, delay))


def _announce(issue: Issue, now) -> None:
    """Publish the count change since the last announcement and remember this one."""
    after = state_of(issue)
    before: dict[str, Any] = {
        **after,
        "event_count": issue.announced_count,
        "last_seen": wire(issue.announced_last_seen),
    }
    publish_issue_change(issue.pk, before, after)
    Issue.objects.filter(pk=issue.pk).update(
        announced_count=issue.event_count, announced_last_seen=issue.last_seen, announced_at=now
    )


def flush_count(issue_id: int) -> bool:
    """Announce the issue's count if it moved since the last announcement and the window is over.

    Returns True when it published. Inside the window it schedules itself again.
    """
    now = timezone.now()
    with transaction.atomic():
        issue = Issue.objects.select_for_update().filter(pk=issue_id).first()
        if issue is None or issue.event_count == issue.announced_count:
            return False
        window = timedelta(seconds=coalesce_seconds())
        if issue.announced_at is not None and issue.announced_at > now - window:
            delay = (issue.announced_at + window - now).total_seconds()
            transaction.on_commit(lambda: schedule_flush(issue_id, delay))
            return False
        _announce(issue, now)
        return True


# --- trailing flushes, one pending per issue per process --------------------

_pending: set[int] = set()
_pending_lock = threading.Lock()


def schedule_flush(issue_id: int, delay: float) -> None:
    """Run ``flush_count(issue_id)`` after ``delay`` seconds on a timer thread.

    The thread is not a daemon on purpose: a short-lived process (a shell, a
    command) waits for its last flush before exiting instead of dropping it.
    """
    with _pending_lock:
        if issue_id in _pending:
            return
        _pending.add(issue_id)
    timer = threading.Timer(delay, _run_flush, args=(issue_id,))
    timer.name = f"issues-flush-{issue_id}"
    timer.start()


def _run_flush(issue_id: int) -> None:
    with _pending_lock:
        _pending.discard(issue_id)
    close_old_connections()
    try:
        flush_count(issue_id)
    except Exception:
        # The count is stored; only its announcement waits for the next event.
        logger.warning("count flush of issue %s failed", issue_id, exc_info=True)
    finally:
        connection.close()
