"""Alerts (a condition over ingested events) and the triggers they leave behind.

An ``AlertTrigger`` publishes itself when it is created (``signals.py``); its
``save()`` runs in a transaction so the trigger and its message commit together.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from issues.models import Issue

# The ranges the API and the admin accept (a window of 10**11 s made every
# ingested event fail with OverflowError). Kept out of the fields' validators
# so a change here needs no migration.
MAX_WINDOW_SECONDS = 30 * 86400
MAX_COOLDOWN_SECONDS = 365 * 86400
MAX_THRESHOLD = 2**31 - 1  # PostgreSQL's integer


class Alert(models.Model):
    class Condition(models.TextChoices):
        THRESHOLD = "threshold", "more than `threshold` events of a matching issue within `window_seconds`"
        MATCH = "match", "a new issue whose title or fingerprint matches `pattern` and level is at least `level`"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    name = models.CharField(max_length=200)
    condition = models.CharField(max_length=10, choices=Condition.choices, default=Condition.THRESHOLD)
    threshold = models.PositiveIntegerField(default=100, help_text="Threshold alerts: trigger above this many events.")
    window_seconds = models.PositiveIntegerField(default=60, help_text="Threshold alerts: the counting window.")
    pattern = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="A case-insensitive regular expression searched in the issue's title and fingerprint; "
        "empty matches every issue.",
    )
    level = models.CharField(
        max_length=10, choices=Issue.Level.choices, blank=True, default="", help_text="Minimum issue level; empty: any."
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    cooldown_seconds = models.PositiveIntegerField(
        default=300, help_text="No new trigger for the same issue within this many seconds of the last one."
    )
    is_active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValidationError({"pattern": f"not a regular expression: {exc}"}) from None
        if self.condition == self.Condition.THRESHOLD and self.window_seconds < 1:
            raise ValidationError({"window_seconds": "must be at least 1 for a threshold alert"})
        errors = {}
        if self.window_seconds is not None and self.window_seconds > MAX_WINDOW_SECONDS:
            errors["window_seconds"] = f"at most {MAX_WINDOW_SECONDS}"
        if self.cooldown_seconds is not None and self.cooldown_seconds > MAX_COOLDOWN_SECONDS:
            errors["cooldown_seconds"] = f"at most {MAX_COOLDOWN_SECONDS}"
        if self.threshold is not None and self.threshold > MAX_THRESHOLD:
            errors["threshold"] = f"at most {MAX_THRESHOLD}"
        if errors:
            raise ValidationError(errors)


class AlertTrigger(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="triggers")
    # Kept when the issue is deleted: a trigger is history.
    issue = models.ForeignKey(Issue, null=True, blank=True, on_delete=models.SET_NULL, related_name="alert_triggers")
    message = models.CharField(max_length=500)
    severity = models.CharField(max_length=10, choices=Alert.Severity.choices)
    value = models.FloatField(help_text="The measured value: the event count for threshold alerts, 1 for matches.")
    triggered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-triggered_at", "-id"]
        # The cool-down check looks up the latest trigger of one alert for one issue.
        indexes = [models.Index(fields=["alert", "issue", "triggered_at"], name="alerts_trigger_cooldown")]

    def __str__(self) -> str:
        return f"{self.alert} on #{self.issue_id} at {self.triggered_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs):
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
