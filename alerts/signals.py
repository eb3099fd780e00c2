"""Signal receivers of the alerts app, connected by ``AlertsConfig.ready()``.

They run inside the transaction of the change they react to: a trigger is
published with its own save, and alerts are checked inside the event's
ingestion, so a rolled-back event leaves neither trigger nor message.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from issues.events import event_ingested
from issues.models import Issue

from . import rules
from .messages import publish_trigger
from .models import Alert, AlertTrigger


def publish_alert_trigger(sender, instance: AlertTrigger, created: bool, **kwargs) -> None:
    """post_save: a new trigger goes out as ``alert_trigger``; edits of history do not."""
    if created:
        publish_trigger(instance)


def check_alerts(sender, issue, created: bool, event, **kwargs) -> None:
    """``issues.events.event_ingested``: check every active alert against the event."""
    rules.check_event(issue, created=created, now=event.received_at)


def check_new_issue(sender, instance: Issue, created: bool, raw: bool = False, **kwargs) -> None:
    """post_save of Issue: a new issue, from anywhere, is checked against every match alert."""
    if created and not raw:
        rules.check_new_issue(instance)


def forget_rules(sender, using: str, **kwargs) -> None:
    """post_save and post_delete of Alert: the cached active rules (rules.active) are stale,
    now for this transaction and at its commit for every other one."""
    rules.forget()
    transaction.on_commit(rules.forget, using=using)


def connect() -> None:
    post_save.connect(check_new_issue, sender=Issue, dispatch_uid="alerts.check_new_issue")
    post_save.connect(publish_alert_trigger, sender=AlertTrigger, dispatch_uid="alerts.publish_alert_trigger")
    event_ingested.connect(check_alerts, dispatch_uid="alerts.check_alerts")
    post_save.connect(forget_rules, sender=Alert, dispatch_uid="alerts.forget_rules_on_save")
    post_delete.connect(forget_rules, sender=Alert, dispatch_uid="alerts.forget_rules_on_delete")
