"""Issues, their comments and the record of every ingested error event.

Every save of an Issue or a Comment publishes itself (see ``publishing.py``):
the save and its publication share one transaction, because the tracking of
``realtime.model_publishing`` wraps the models' ``save_base`` in
``transaction.atomic()``. Django sends ``post_save`` after the save's own
transaction, so without the wrapper an autocommit save (a shell, a command)
would commit before its message is stored, and a crash in between would lose
the message. Deletes already run in the collector's transaction.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

# Bumped by ingestion with UPDATE ... F() (events.py), never by a form: a full
# save() of an instance loaded before a bump must not write its stale counts back.
COUNTER_FIELDS = ("event_count", "last_seen", "announced_count", "announced_last_seen", "announced_at")


def derive_fingerprint(title: str, culprit: str = "") -> str:
    """The grouping key of an event that brings none: the same title and culprit, the same issue."""
    return hashlib.sha256(f"{title}\n{culprit}".encode()).hexdigest()


class Issue(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"
        FATAL = "fatal"

    class Status(models.TextChoices):
        UNRESOLVED = "unresolved"
        RESOLVED = "resolved"
        IGNORED = "ignored"

    title = models.CharField(max_length=255)
    culprit = models.CharField(max_length=255, blank=True, default="")
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.ERROR, db_index=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.UNRESOLVED, db_index=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_issues"
    )
    fingerprint = models.CharField(
        max_length=255, unique=True, blank=True, help_text="Grouping key; derived from title and culprit when empty."
    )
    event_count = models.PositiveIntegerField(default=0)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # What the last coalesced count announcement said (events.py): the next one
    # reports the change since then, and ``announced_at`` spaces them out.
    announced_count = models.PositiveIntegerField(default=0, editable=False)
    announced_last_seen = models.DateTimeField(null=True, blank=True, editable=False)
    announced_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-last_seen", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def save(self, *args, **kwargs):
        if not self.fingerprint:
            self.fingerprint = derive_fingerprint(self.title, self.culprit)
        if kwargs.get("update_fields") is None and not self._state.adding and not kwargs.get("force_insert"):
            kwargs["update_fields"] = self._fields_to_write()
        super().save(*args, **kwargs)
        self._remember_counters()

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._remember_counters()
        return instance

    def refresh_from_db(self, *args, **kwargs):
        super().refresh_from_db(*args, **kwargs)
        self._remember_counters()

    def _remember_counters(self) -> None:
        self._loaded_counters = {f: self.__dict__[f] for f in COUNTER_FIELDS if f in self.__dict__}

    def _fields_to_write(self) -> list[str] | None:
        """Every loaded field but the counters this instance left as it loaded them."""
        loaded = getattr(self, "_loaded_counters", None)
        if not loaded:
            return None
        untouched = {f for f, value in loaded.items() if self.__dict__.get(f) == value}
        if not untouched:
            return None
        return [
            f.name
            for f in self._meta.concrete_fields
            if not f.primary_key and f.attname in self.__dict__ and f.name not in untouched
        ]


class Comment(models.Model):
    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="issue_comments"
    )
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment {self.pk} on #{self.issue_id}"


class Event(models.Model):
    """One ingested error event: the timestamps threshold alerts count over a window."""

    issue = models.ForeignKey(Issue, on_delete=models.CASCADE, related_name="events")
    level = models.CharField(max_length=10, choices=Issue.Level.choices, default=Issue.Level.ERROR)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["issue", "received_at"], name="issues_event_issue_time")]

    def __str__(self) -> str:
        return f"event on #{self.issue_id} at {self.received_at:%Y-%m-%d %H:%M:%S}"
