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

The active rules are read for every ingested batch, so ``active()`` keeps them
``ALERTS_RULES_CACHE_SECONDS`` (default 1) per process. A save or delete of an
alert in this process forgets them at once and again when its transaction
commits, and a transaction that wrote an alert reads them fresh, so what this
process changes it sees at once (rolled back or not); a change made by another
process (another server, a shell) or without signals (``QuerySet.update``, SQL)
is seen within that second. An alert deleted meanwhile does not fire (``fire``
checks its row). 0 turns the cache off.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import router, transaction
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
        # The rule may come from active()'s cache: one deleted since by another process does not fire.
        if not Alert.objects.select_for_update().filter(pk=alert.pk).exists():
            return None
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


def cache_seconds() -> float:
    return float(getattr(settings, "ALERTS_RULES_CACHE_SECONDS", 1.0))


# condition -> (monotonic expiry, the active alerts); _generation moves on every forget().
_rules: dict[str, tuple[float, list[Alert]]] = {}
_generation = 0


def active(condition: str) -> list[Alert]:
    """The active alerts of one condition (callers must not change them): kept per
    process for ``cache_seconds()``, else a plain SELECT (``issues.ingest_sql``),
    which costs less than compiling the queryset."""
    ttl = cache_seconds()
    if ttl <= 0 or _writing_alerts():
        return _read(condition)
    now = time.monotonic()
    hit = _rules.get(condition)
    if hit is not None and hit[0] > now:
        return hit[1]
    generation = _generation
    rules = _read(condition)
    if generation == _generation:  # no save or delete while reading: the rows are current
        _rules[condition] = (now + ttl, rules)
    return rules


def _read(condition: str) -> list[Alert]:
    return select_models(Alert, {"is_active": True, "condition": condition})


def forget() -> None:
    """Drop the cached rules (an alert was saved or deleted, or its transaction committed)."""
    global _generation
    _generation += 1
    _rules.clear()


def _writing_alerts() -> bool:
    """This thread's transaction saved or deleted an alert: its rows are not the committed ones
    (signals.py registers ``forget`` on commit; Django drops it from the list on commit or rollback)."""
    connection = transaction.get_connection(router.db_for_write(Alert))
    return connection.in_atomic_block and any(func is forget for _, func, _ in connection.run_on_commit)
