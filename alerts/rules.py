"""Alert rules as plain functions: does an alert hold for an ingested event, and may it fire?

- ``threshold``: more than ``threshold`` events of one matching issue were
  received within the last ``window_seconds`` (counted from ``issues.Event``).
  The value is that count.
- ``match``: a new issue matches, however it was made (its first event, the
  API, the admin, a shell: docs/protocol.md section 7 says "a new issue"). Checked
  by ``check_new_issue`` from the issue's own ``post_save``, so an issue born
  from an event is matched once, not again by ``check_event``. The value is 1.

An issue matches an alert when its title or fingerprint contains a match of
``pattern`` (a case-insensitive regular expression; empty matches all) and its
level is at least ``level`` (empty: any level). Both conditions apply this
filter, so a threshold alert can watch, say, only ``fatal`` issues.

Cool-down: an alert does not trigger again for the same issue within
``cooldown_seconds`` of its last trigger for that issue. The check and the
insert run under a lock on the alert's row, so two concurrent events cannot
both pass it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.db import transaction
from django.utils import timezone

from issues.ingest_sql import select_models
from issues.models import Event, Issue

from .models import Alert, AlertTrigger

logger = logging.getLogger(__name__)

LEVEL_RANK = {level: rank for rank, level in enumerate(Issue.Level.values)}


@dataclass(frozen=True)
class Hit:
    value: float
    message: str


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error:
        # Validated on save; a pattern that slipped past (raw SQL, old rows) is matched literally.
        return re.compile(re.escape(pattern), re.IGNORECASE)


def issue_matches(alert: Alert, issue: Issue) -> bool:
    if alert.level and LEVEL_RANK.get(issue.level, -1) < LEVEL_RANK.get(alert.level, 0):
        return False
    if alert.pattern:
        rx = compile_pattern(alert.pattern)
        return bool(rx.search(issue.title) or rx.search(issue.fingerprint))
    return True


def events_in_window(issue_id: int, window_seconds: int, now: datetime) -> int:
    return Event.objects.filter(issue_id=issue_id, received_at__gt=now - timedelta(seconds=window_seconds)).count()


def evaluate(alert: Alert, issue: Issue, *, created: bool, now: datetime) -> Hit | None:
    """The alert's verdict on one event of ``issue``: a Hit when its condition holds."""
    if not issue_matches(alert, issue):
        return None
    if alert.condition == Alert.Condition.THRESHOLD:
        count = events_in_window(issue.pk, alert.window_seconds, now)
        if count > alert.threshold:
            return Hit(
                count,
                f"High error rate detected: {count} events in {alert.window_seconds}s "
                f"(threshold {alert.threshold}) on {issue.title}",
            )
        return None
    if alert.condition == Alert.Condition.MATCH and created:
        return Hit(1, f"New issue matched alert {alert.name!r}: {issue.title}")
    return None


def _check(alerts, issue: Issue, *, created: bool, now: datetime) -> list[AlertTrigger]:
    triggers = []
    for alert in alerts:
        try:
            hit = evaluate(alert, issue, created=created, now=now)
            trigger = fire(alert, issue, hit, now) if hit is not None else None
        except (OverflowError, ValueError):
            # A row that slipped past validation (raw SQL, an older version) must
            # not fail every ingested event: skip it, and say which one it is.
            logger.warning("alert %s cannot be evaluated; skipped (check its ranges)", alert.pk, exc_info=True)
            continue
        if trigger is not None:
            triggers.append(trigger)
    return triggers


def cooling_down(alert: Alert, issue_id: int, now: datetime) -> bool:
    since = now - timedelta(seconds=alert.cooldown_seconds)
    return AlertTrigger.objects.filter(alert=alert, issue_id=issue_id, triggered_at__gt=since).exists()


def fire(alert: Alert, issue: Issue, hit: Hit, now: datetime) -> AlertTrigger | None:
    """Store a trigger unless the alert is cooling down for this issue; its save publishes it."""
    with transaction.atomic():
        # Serialises concurrent firings of one alert (PostgreSQL row lock; SQLite's write lock is already held).
        Alert.objects.select_for_update().filter(pk=alert.pk).exists()
        if cooling_down(alert, issue.pk, now):
            return None
        return AlertTrigger.objects.create(
            alert=alert,
            issue=issue,
            message=hit.message[:500],
            severity=alert.severity,
            value=hit.value,
            triggered_at=now,
        )


def check_event(issue: Issue, *, created: bool, now: datetime | None = None) -> list[AlertTrigger]:
    """Check every active threshold alert against one ingested event of ``issue``; returns the new triggers.

    ``created`` is accepted for the signal's sake; match alerts already ran when the issue was saved.
    """
    return _check(active(Alert.Condition.THRESHOLD), issue, created=False, now=now or timezone.now())


def check_new_issue(issue: Issue, now: datetime | None = None) -> list[AlertTrigger]:
    """Check every active match alert against a newly created ``issue``; returns the new triggers."""
    return _check(active(Alert.Condition.MATCH), issue, created=True, now=now or timezone.now())


def active(condition: str) -> list[Alert]:
    """The active alerts of one condition, read for every ingested batch: a plain
    SELECT (``issues.ingest_sql``), which costs less than compiling the queryset."""
    return select_models(Alert, {"is_active": True, "condition": condition})
