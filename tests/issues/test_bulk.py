"""The one documented call for bulk writes: publishing_bulk_changes (issues/publishing.py)."""

import pytest
from django.db import transaction

from issues.actor import acting_as
from issues.models import Comment, Issue
from issues.publishing import publishing_bulk_changes
from realtime.models import Message

from .helpers import assert_issue_update, assert_same_on_both, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def issues():
    return [Issue.objects.create(title=f"issue {i}", level="debug") for i in range(3)]


def test_queryset_update_publishes_what_signals_would(issues, alice):
    Issue.objects.filter(pk=issues[2].pk).update(status="resolved")  # already resolved: no change below
    Message.objects.all().delete()
    queryset = Issue.objects.filter(level="debug")
    with acting_as(alice), publishing_bulk_changes(queryset):
        queryset.update(status="resolved")
    messages = published("issues")
    assert [m["issue_id"] for m in messages] == [str(issues[0].pk), str(issues[1].pk)]
    for issue, msg in zip(issues, messages, strict=False):
        data = assert_issue_update(msg, "issues", issue.pk, "resolved")
        assert data["changes"] == {"status": ["unresolved", "resolved"]} and data["resolved_by"] == str(alice.pk)


def test_bulk_create_publishes_created_and_commented(issues, alice):
    with publishing_bulk_changes() as bulk:
        [new] = bulk.created(Issue.objects.bulk_create([Issue(title="bulk", fingerprint="fp-bulk")]))
        bulk.created(Comment.objects.bulk_create([Comment(issue=issues[0], author=alice, body="hi")]))
    assert_issue_update(assert_same_on_both(new.pk)[-1], f"issue:{new.pk}", new.pk, "created", seq=1)
    data = assert_issue_update(
        published(f"issue:{issues[0].pk}")[-1], f"issue:{issues[0].pk}", issues[0].pk, "commented"
    )
    assert data["comment"]["body"] == "hi"


def test_bulk_delete_publishes_deleted(issues):
    queryset = Issue.objects.filter(pk=issues[0].pk)
    with publishing_bulk_changes(queryset):
        queryset._raw_delete(queryset.db)  # the signal-free path
    assert published("issues")[-1]["update_type"] == "deleted"


def test_bulk_change_that_changes_nothing_publishes_nothing(issues):
    before = Message.objects.count()
    with publishing_bulk_changes(Issue.objects.all()):
        Issue.objects.update(level="debug")
    assert Message.objects.count() == before


def test_rolled_back_bulk_change_publishes_nothing(issues):
    before = Message.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        with publishing_bulk_changes(Issue.objects.all()):
            Issue.objects.update(status="ignored")
        raise RuntimeError("roll back")
    assert Message.objects.count() == before
