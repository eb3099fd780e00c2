"""What a change of an issue or a comment publishes, for signals and bulk writes alike.

``publish_issue_change(issue_id, before, after)`` is the one function that turns
two states (see ``messages.py``) into an ``issue_update`` (and an ``assigned``
notification); the signal receivers call it for each save and delete.

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
    """Publish one change of an issue; returns its update_type, or None when nothing changed.

    ``before`` None: created. ``after`` None: deleted. Else the diff decides.
    """
    if after is None:
        m.publish_issue_update(issue_id, m.DELETED, m.issue_data(before or {}, {}))
        return m.DELETED
    if before is None:
        m.publish_issue_update(issue_id, m.CREATED, m.issue_data(after, {}))
        if after.get("assignee") is not None:
            m.publish_assigned(after["assignee"], issue_id, after["title"], actor_id)
        return m.CREATED
    changes = m.diff(before, after)
    update_type = m.update_type_for(changes)
    if update_type is None:
        return None
    extra = {"resolved_by": actor_id} if update_type == m.RESOLVED else {}
    m.publish_issue_update(issue_id, update_type, m.issue_data({**before, **after}, changes, **extra))
    if "assignee" in changes and after["assignee"] is not None:
        m.publish_assigned(after["assignee"], issue_id, after.get("title", before.get("title")), actor_id)
    return update_type


def publish_comment(comment: Comment, changes: dict[str, list] | None = None) -> None:
    """A new comment (``changes`` empty) or an edited one, as ``commented`` on its issue."""
    state = read_states(Issue.objects.filter(pk=comment.issue_id)).get(comment.issue_id)
    if state is None:  # the issue is being deleted with its comments
        return
    comment_data = m.comment_dict(comment.pk, comment.author_id, comment.body, comment.created_at)
    m.publish_issue_update(comment.issue_id, m.COMMENTED, m.issue_data(state, changes or {}, comment=comment_data))


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
