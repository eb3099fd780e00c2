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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from realtime.model_publishing import wire

from . import ingest_sql
from .flusher import Flusher
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


def batch_limit() -> int:
    """The most events one ``POST /api/events/`` list may carry (ISSUES_EVENTS_BATCH_LIMIT)."""
    return int(getattr(settings, "ISSUES_EVENTS_BATCH_LIMIT", 1000))


def ingest_event(
    *, title: str, culprit: str = "", level: str = "error", fingerprint: str | None = None
) -> IngestResult:
    """Group one event into its issue, count it, and check alerts; all in one transaction."""
    return ingest_events([{"title": title, "culprit": culprit, "level": level, "fingerprint": fingerprint}])[0]


def ingest_events(events: Sequence[Mapping[str, Any]]) -> list[IngestResult]:
    """Ingest a batch (dicts of title, culprit, level, fingerprint) in one transaction.

    Events are grouped by fingerprint first, so each issue costs one count
    ``UPDATE`` (``+ n``), one announcement decision and one alert check per
    batch, and the ``Event`` rows go in with multi-row ``INSERT``s (``ingest_sql.py``). The counts are
    what ingesting them one by one would store. The alerts see one
    ``event_ingested`` per issue per batch (its last event, the count after the
    whole batch): a threshold crossed inside the batch is crossed at its end,
    and a match fires on ``created`` either way. Results are in input order,
    each with the count its event brought the issue to.
    """
    now = timezone.now()
    groups: dict[str, list[Mapping[str, Any]]] = {}
    order: list[str] = []
    for event in events:
        fingerprint = event.get("fingerprint") or derive_fingerprint(event["title"], event.get("culprit") or "")
        groups.setdefault(fingerprint, []).append(event)
        order.append(fingerprint)
    with transaction.atomic():
        # Existing issues are bumped first: one UPDATE ... RETURNING each, which
        # also reads them (ingest_sql.py); only the rest are created.
        ingest_sql.lock_in_pk_order(sorted(groups))
        issues: dict[str, Issue] = {}
        created: set[str] = set()
        bumped: list[str] = []
        # In one order (fingerprints sorted), so concurrent batches creating the
        # same new issues wait on each other instead of deadlocking (PostgreSQL).
        for fingerprint in sorted(groups):
            group = groups[fingerprint]
            issue = ingest_sql.bump(fingerprint, len(group), now)
            if issue is None:
                issue = _create_issue(fingerprint, group[0], count=len(group), now=now)
                if issue is not None:
                    created.add(fingerprint)
                else:  # lost the creation race: count on the winner's row
                    issue = ingest_sql.bump(fingerprint, len(group), now)
                    assert issue is not None  # the winner's row exists now
            if fingerprint not in created:
                bumped.append(fingerprint)
            issues[fingerprint] = issue
        ids = ingest_sql.insert_events(
            [(issues[fp].pk, ev.get("level") or "error") for fp, ev in zip(order, events, strict=True)], now
        )
        last = {fp: i for i, fp in enumerate(order)}
        last_event = {
            fp: Event(pk=ids[i], issue=issues[fp], level=events[i].get("level") or "error", received_at=now)
            for fp, i in last.items()
        }
        for fingerprint in bumped:
            _announce_or_defer(issues[fingerprint], now)
        if event_ingested.has_listeners(Event):
            for fingerprint, issue in issues.items():
                event_ingested.send(
                    sender=Event, issue=issue, created=fingerprint in created, event=last_event[fingerprint]
                )
    results = []
    remaining = {fp: len(group) for fp, group in groups.items()}
    for fingerprint in order:
        remaining[fingerprint] -= 1
        issue = issues[fingerprint]
        first_of_new = fingerprint in created and remaining[fingerprint] == len(groups[fingerprint]) - 1
        results.append(IngestResult(issue, first_of_new, issue.event_count - remaining[fingerprint]))
    return results


def _create_issue(fingerprint: str, first: Mapping[str, Any], *, count: int, now) -> Issue | None:
    """The new issue of ``fingerprint`` holding ``count`` events, or None if a concurrent creator won."""
    try:
        # A savepoint: losing the race to a concurrent creator rolls back our
        # insert and its `created` message, and we count on the winner's row.
        with transaction.atomic():
            return Issue.objects.create(
                title=first["title"][:255],
                culprit=(first.get("culprit") or "")[:255],
                level=first.get("level") or "error",
                fingerprint=fingerprint,
                event_count=count,
                first_seen=now,
                last_seen=now,
                # `created` announces this count: the next announcement starts from there.
                announced_count=count,
                announced_last_seen=now,
                announced_at=now,
            )
    except IntegrityError:
        return None


def _announce_or_defer(issue: Issue, now) -> None:
    """``issue`` was read locked in this transaction (``ingest_sql.bump``), so its
    ``announced_at`` is current and deciding here needs no query of its own."""
    window = timedelta(seconds=coalesce_seconds())
    if issue.announced_at is None or issue.announced_at <= now - window:
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
    ingest_sql.mark_announced(issue, now)


def flush_count(issue_id: int) -> bool:
    """Announce the issue's count if it moved since the last announcement and the window is over.

    Returns True when it published. Inside the window it schedules itself again.
    """
    now = timezone.now()
    with transaction.atomic():
        issue = next(iter(ingest_sql.select_models(Issue, {"id": issue_id}, lock=True)), None)
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


def _run_flush(issue_id: int) -> None:
    try:
        flush_count(issue_id)
    except Exception:
        # The count is stored; only its announcement waits for the next event.
        logger.warning("count flush of issue %s failed", issue_id, exc_info=True)


_flusher = Flusher(_run_flush, linger=lambda: max(1.0, coalesce_seconds()))


def schedule_flush(issue_id: int, delay: float) -> None:
    """Run ``flush_count(issue_id)`` after ``delay`` seconds on the process's flush thread (issues/flusher.py)."""
    _flusher.schedule(issue_id, delay)
