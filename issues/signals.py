"""Signal receivers: every save or delete of an Issue or a Comment publishes itself.

Connected by ``IssuesConfig.ready()``. ``pre_save`` reads the row as the
database has it (locked, inside the save's transaction: see ``Issue.save``), and
``post_save`` diffs it against what was written, so a stale instance, a
no-op save or ``update_fields`` all publish exactly what changed in the row.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.expressions import Combinable
from django.db.models.signals import post_delete, post_save, pre_save

from .actor import current_actor_id
from .models import Comment, Issue
from .publishing import publish_comment, publish_issue_change, read_states, state_of

_BEFORE = "_issues_state_before_save"


def remember_issue_state(sender, instance: Issue, raw=False, **kwargs) -> None:
    """pre_save: the issue's row before this save (None when there is none yet)."""
    before = None
    if instance.pk is not None:
        # Locked when inside a transaction (always, via Issue.save; not for a bare save_base()).
        lock = transaction.get_connection(kwargs.get("using")).in_atomic_block
        before = read_states(Issue.objects.filter(pk=instance.pk), lock=lock).get(instance.pk)
    instance.__dict__[_BEFORE] = before


def publish_issue_save(sender, instance: Issue, created: bool, update_fields=None, **kwargs) -> None:
    """post_save: one issue_update with what this save changed, or nothing."""
    before = instance.__dict__.pop(_BEFORE, None)
    # ``issue.event_count = F("event_count") + 1`` leaves an expression behind: read the result.
    expressions = [
        f.attname for f in instance._meta.concrete_fields if isinstance(instance.__dict__.get(f.attname), Combinable)
    ]
    if expressions:
        instance.refresh_from_db(fields=expressions)
    after = state_of(instance, update_fields)
    publish_issue_change(instance.pk, None if created else before, after, actor_id=current_actor_id())


def publish_issue_delete(sender, instance: Issue, **kwargs) -> None:
    publish_issue_change(instance.pk, state_of(instance), None, actor_id=current_actor_id())


def remember_comment_body(sender, instance: Comment, raw=False, **kwargs) -> None:
    before = None
    if instance.pk is not None:
        before = Comment.objects.filter(pk=instance.pk).values_list("body", flat=True).first()
    instance.__dict__[_BEFORE] = before


def publish_comment_save(sender, instance: Comment, created: bool, **kwargs) -> None:
    """post_save: a new comment, or an edit of its body, as ``commented``."""
    before = instance.__dict__.pop(_BEFORE, None)
    if created or before is None:
        publish_comment(instance)
    elif before != instance.body:
        publish_comment(instance, {"body": [before, instance.body]})


def connect() -> None:
    pre_save.connect(remember_issue_state, sender=Issue, dispatch_uid="issues.remember_issue_state")
    post_save.connect(publish_issue_save, sender=Issue, dispatch_uid="issues.publish_issue_save")
    post_delete.connect(publish_issue_delete, sender=Issue, dispatch_uid="issues.publish_issue_delete")
    pre_save.connect(remember_comment_body, sender=Comment, dispatch_uid="issues.remember_comment_body")
    post_save.connect(publish_comment_save, sender=Comment, dispatch_uid="issues.publish_comment_save")
