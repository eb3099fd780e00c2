"""What a change of an issue or a comment publishes, for saves and bulk writes alike.

Every save and delete of an Issue or a Comment is tracked by
``realtime.model_publishing.track_changes`` (connected by
``IssuesConfig.ready()``): it reads the row before the save, locked, in the
save's transaction, and diffs it against what was written, so a stale
instance, a no-op save or ``update_fields`` all publish exactly what changed in
the row. ``publish_model``'s own message does not fit Dexter's: an
``issue_update`` has the most specific ``update_type``, ``issue_id``,
``resolved_by``, a notification on assignment, and a comment is published on
its issue; so the changes are handed to ``publish_issue_event`` and
``publish_comment`` here, which build the messages of ``messages.py``.

Bulk writes bypass model signals. Wrap them in the one documented call, which
publishes exactly what the signals would have, in the same transaction::

    from issues.publishing import publishing_bulk_changes

    with publishing_bulk_changes(Issue.objects.filter(level="debug")) as bulk:
        Issue.objects.filter(level="debug").update(status="ignored")
        bulk.created(Issue.objects.bulk_create([Issue(title="x", fingerprint="fp-x")]))
        bulk.created(Comment.objects.bulk_create([Comment(issue=issue, body="seen")]))

Rows of the queryset are read before and after the block: each changed row
gives one ``issue_update`` (a vanished one ``deleted``). ``bulk_create`` skips
``Issue.save()``, so give each new Issue its ``fingerprint`` yourself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from realtime.model_publishing import track_changes

from . import messages as m
from .actor import current_actor_id
from .models import Comment, Issue

STATE_ATTRS = tuple(m.STATE_FIELDS.values())


def read_states(queryset: QuerySet, *, lock: bool = False) -> dict[int, dict[str, Any]]:
    """The current wire state of each issue of ``queryset``, by id."""
    if lock:
        queryset = queryset.select_for_update()
    return {row["id"]: m.wire_state(row) for row in queryset.order_by("pk").values("id", *STATE_ATTRS)}


def state_of(issue: Issue, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The wire state of an in-memory issue (only ``fields``, model names, when given)."""
    names = set(fields) if fields is not None else None
    values = {}
    for attr in m.STATE_FIELDS.values():
        model_name = attr.removesuffix("_id")
        if (names is None or model_name in names) and attr in issue.__dict__:
            values[attr] = issue.__dict__[attr]
    return m.wire_state(values)


def publish_issue_change(
    issue_id: Any, before: dict[str, Any] | None, after: dict[str, Any] | None, *, actor_id: str | None = None
) -> str | None:
    """Publish one change of an issue given its two states (a bulk write, ingestion).

    ``before`` None: created. ``after`` None: deleted. Else the diff decides.
    """
    if after is None:
        return publish_issue_event(issue_id, m.DELETED, before or {}, {}, actor_id=actor_id)
    if before is None:
        return publish_issue_event(issue_id, m.CREATED, after, {}, actor_id=actor_id)
    return publish_issue_event(issue_id, m.UPDATED, {**before, **after}, m.diff(before, after), actor_id=actor_id)


def publish_issue_event(
    issue_id: Any, update_type: str, state: dict[str, Any], changes: dict[str, list], *, actor_id: str | None = None
) -> str | None:
    """Publish an issue ``created``, ``updated`` (with ``changes``) or ``deleted``; returns
    the update_type it published (``updated`` refined), or None when nothing changed."""
    if update_type == m.DELETED:
        m.publish_issue_update(issue_id, m.DELETED, m.issue_data(state, {}))
        return m.DELETED
    if update_type == m.CREATED:
        m.publish_issue_update(issue_id, m.CREATED, m.issue_data(state, {}))
        if state.get("assignee") is not None:
            m.publish_assigned(state["assignee"], issue_id, state["title"], actor_id)
        return m.CREATED
    refined = m.update_type_for(changes)
    if refined is None:
        return None
    extra = {"resolved_by": actor_id} if refined == m.RESOLVED else {}
    m.publish_issue_update(issue_id, refined, m.issue_data(state, changes, **extra))
    if "assignee" in changes and state["assignee"] is not None:
        m.publish_assigned(state["assignee"], issue_id, state.get("title"), actor_id)
    return refined


def publish_comment(comment: Comment, changes: dict[str, list] | None = None) -> None:
    """A new comment (``changes`` empty) or an edited one, as ``commented`` on its issue."""
    state = read_states(Issue.objects.filter(pk=comment.issue_id)).get(comment.issue_id)
    if state is None:  # the issue is being deleted with its comments
        return
    comment_data = m.comment_dict(comment.pk, comment.author_id, comment.body, comment.created_at)
    m.publish_issue_update(comment.issue_id, m.COMMENTED, m.issue_data(state, changes or {}, comment=comment_data))


def _issue_changed(issue: Issue, update_type: str, state: dict[str, Any], changes: dict[str, list]) -> None:
    publish_issue_event(issue.pk, update_type, state, changes, actor_id=current_actor_id())


def _comment_changed(comment: Comment, update_type: str, state: dict[str, Any], changes: dict[str, list]) -> None:
    """A new comment, or an edit of its body, as ``commented``; a deleted one publishes nothing."""
    if update_type != m.DELETED:
        publish_comment(comment, changes)


def track_issues_and_comments() -> None:
    """Publish every save and delete of an Issue, and every new or edited Comment."""
    track_changes(Issue, fields=list(m.STATE_FIELDS), on_change=_issue_changed)
    track_changes(Comment, fields=["body"], on_change=_comment_changed)


class BulkChanges:
    """Handed out by ``publishing_bulk_changes``: report what ``bulk_create`` made."""

    def __init__(self) -> None:
        self.new_objects: list[Issue | Comment] = []

    def created(self, objects: Iterable[Issue | Comment]) -> list[Issue | Comment]:
        objects = list(objects)
        if any(obj.pk is None for obj in objects):
            raise ValueError("bulk-created objects need their primary keys (a backend that returns them)")
        self.new_objects.extend(objects)
        return objects


@contextmanager
def publishing_bulk_changes(queryset: QuerySet | None = None) -> Iterator[BulkChanges]:
    """Run bulk writes and publish what model signals would have, in one transaction."""
    with transaction.atomic():
        before = read_states(queryset, lock=True) if queryset is not None else {}
        bulk = BulkChanges()
        yield bulk
        after = read_states(Issue.objects.filter(pk__in=list(before)))
        actor_id = current_actor_id()
        for issue_id, state in before.items():
            publish_issue_change(issue_id, state, after.get(issue_id), actor_id=actor_id)
        for obj in bulk.new_objects:
            if isinstance(obj, Issue):
                publish_issue_change(obj.pk, None, state_of(obj), actor_id=actor_id)
            else:
                publish_comment(obj)
