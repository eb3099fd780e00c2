"""Every save and delete of an Issue or a Comment publishes itself (docs/protocol.md section 4)."""

import pytest
from django.db import transaction
from django.db.models import F

from issues.actor import acting_as
from issues.models import Comment, Issue
from realtime.models import Message

from .helpers import assert_envelope, assert_issue_update, assert_same_on_both, issue_updates, published

pytestmark = pytest.mark.django_db


def make_issue(**fields) -> Issue:
    return Issue.objects.create(**{"title": "TypeError in checkout", "culprit": "shop.checkout", **fields})


def test_issue_create_publishes_created_on_issues_and_issue_channel():
    issue = make_issue(level="error")
    on_all, on_one = issue_updates(issue.pk)
    assert len(on_all) == len(on_one) == 1
    data = assert_issue_update(on_all[0], "issues", issue.pk, "created", seq=1)
    assert_issue_update(on_one[0], f"issue:{issue.pk}", issue.pk, "created", seq=1)
    assert data["title"] == "TypeError in checkout" and data["status"] == "unresolved" and data["level"] == "error"
    assert data["changes"] == {} and data["assignee"] is None
    assert issue.fingerprint  # derived from title and culprit


def test_resolving_publishes_resolved_with_acting_user(alice):
    issue = make_issue()
    issue.status = "resolved"
    with acting_as(alice):
        issue.save()
    on_one = assert_same_on_both(issue.pk)
    data = assert_issue_update(on_one[-1], f"issue:{issue.pk}", issue.pk, "resolved", seq=2)
    assert data["resolved_by"] == str(alice.pk)
    assert data["status"] == "resolved" and data["changes"] == {"status": ["unresolved", "resolved"]}


def test_resolved_by_is_null_without_an_acting_user():
    issue = make_issue()
    issue.status = "resolved"
    issue.save()
    data = published(f"issue:{issue.pk}")[-1]["data"]
    assert data["resolved_by"] is None


def test_status_change_other_than_resolved_is_status_changed():
    issue = make_issue()
    issue.status = "ignored"
    issue.title = "TypeError in checkout (v2)"
    issue.save()
    data = assert_issue_update(published(f"issue:{issue.pk}")[-1], f"issue:{issue.pk}", issue.pk, "status_changed")
    # The most specific type, and every changed field.
    assert data["changes"] == {
        "status": ["unresolved", "ignored"],
        "title": ["TypeError in checkout", "TypeError in checkout (v2)"],
    }
    assert "resolved_by" not in data


def test_resolving_and_assigning_in_one_save_is_one_resolved_message(alice, bob):
    issue = make_issue()
    issue.status, issue.assignee = "resolved", alice
    with acting_as(bob):
        issue.save()
    on_one = assert_same_on_both(issue.pk)
    assert [m["update_type"] for m in on_one] == ["created", "resolved"]
    assert on_one[-1]["data"]["changes"] == {"status": ["unresolved", "resolved"], "assignee": [None, str(alice.pk)]}
    assert published(f"user:{alice.pk}")[0]["data"] == {"title": issue.title, "by": str(bob.pk)}


def test_assigning_publishes_assigned_and_notifies_the_assignee(alice, bob):
    issue = make_issue()
    issue.assignee = alice
    with acting_as(bob):
        issue.save()
    data = assert_issue_update(published("issues")[-1], "issues", issue.pk, "assigned", seq=2)
    assert data["changes"] == {"assignee": [None, str(alice.pk)]} and data["assignee"] == str(alice.pk)
    [note] = published(f"user:{alice.pk}")
    assert set(note) == {"type", "channel", "seq", "ts", "kind", "issue_id", "data"}
    assert note["type"] == "notification" and note["kind"] == "assigned" and note["issue_id"] == str(issue.pk)
    assert_envelope(note, f"user:{alice.pk}", seq=1)
    assert note["data"] == {"title": issue.title, "by": str(bob.pk)}
    assert published(f"user:{bob.pk}") == []


def test_unassigning_publishes_assigned_without_notification(alice):
    issue = make_issue(assignee=alice)  # created with an assignee: notified once
    issue.assignee = None
    issue.save()
    assert published("issues")[-1]["update_type"] == "assigned"
    assert published("issues")[-1]["data"]["changes"] == {"assignee": [str(alice.pk), None]}
    assert len(published(f"user:{alice.pk}")) == 1


def test_other_field_change_is_updated():
    issue = make_issue(level="warning")
    issue.level = "fatal"
    issue.save()
    data = assert_issue_update(published("issues")[-1], "issues", issue.pk, "updated")
    assert data["changes"] == {"level": ["warning", "fatal"]}


def test_save_that_changes_nothing_publishes_nothing():
    issue = make_issue()
    before = Message.objects.count()
    issue.save()
    Issue.objects.get(pk=issue.pk).save()
    issue.save(update_fields=["title", "status"])
    assert Message.objects.count() == before


def test_update_fields_compares_only_written_fields():
    issue = make_issue()
    issue.title, issue.level = "renamed", "fatal"
    issue.save(update_fields=["title"])  # level not written: not a change
    assert published("issues")[-1]["data"]["changes"] == {"title": ["TypeError in checkout", "renamed"]}


def test_stale_instance_reports_the_rows_real_change():
    issue = make_issue()
    stale = Issue.objects.get(pk=issue.pk)
    Issue.objects.filter(pk=issue.pk).update(status="resolved")  # behind the instance's back
    stale.title = "renamed"
    stale.save()  # writes status "unresolved" back: the row changes resolved -> unresolved
    changes = published("issues")[-1]["data"]["changes"]
    assert changes == {"status": ["resolved", "unresolved"], "title": ["TypeError in checkout", "renamed"]}
    assert published("issues")[-1]["update_type"] == "status_changed"


def test_stale_instance_does_not_write_back_counts():
    issue = make_issue(event_count=1)
    stale = Issue.objects.get(pk=issue.pk)
    Issue.objects.filter(pk=issue.pk).update(event_count=F("event_count") + 5)
    stale.title = "renamed"
    stale.save()
    assert Issue.objects.get(pk=issue.pk).event_count == 6
    assert published("issues")[-1]["data"]["changes"] == {"title": ["TypeError in checkout", "renamed"]}


def test_f_expression_save_publishes_the_resulting_value():
    issue = make_issue(event_count=3)
    issue.event_count = F("event_count") + 1
    issue.save()
    data = published("issues")[-1]["data"]
    assert data["changes"] == {"event_count": [3, 4]} and data["event_count"] == 4


def test_delete_publishes_deleted():
    issue = make_issue()
    issue_id = issue.pk
    issue.delete()
    on_one = assert_same_on_both(issue_id)
    data = assert_issue_update(on_one[-1], f"issue:{issue_id}", issue_id, "deleted", seq=2)
    assert data["title"] == "TypeError in checkout" and data["changes"] == {}


def test_queryset_delete_publishes_deleted_for_each():
    first, second = make_issue(fingerprint="a"), make_issue(fingerprint="b")
    Issue.objects.filter(pk__in=[first.pk, second.pk]).delete()
    assert [m["update_type"] for m in published("issues")] == ["created", "created", "deleted", "deleted"]


def test_comment_publishes_commented(alice):
    issue = make_issue()
    comment = Comment.objects.create(issue=issue, author=alice, body="Looking into it")
    on_one = assert_same_on_both(issue.pk)
    data = assert_issue_update(on_one[-1], f"issue:{issue.pk}", issue.pk, "commented", seq=2)
    assert data["comment"]["id"] == str(comment.pk) and data["comment"]["author"] == str(alice.pk)
    assert data["comment"]["body"] == "Looking into it" and data["comment"]["created_at"].endswith("Z")
    assert data["changes"] == {}


def test_comment_edit_publishes_body_change_and_noop_edit_nothing(alice):
    comment = Comment.objects.create(issue=make_issue(), author=alice, body="first")
    before = Message.objects.count()
    comment.save()
    assert Message.objects.count() == before
    comment.body = "second"
    comment.save()
    data = published("issues")[-1]["data"]
    assert published("issues")[-1]["update_type"] == "commented" and data["changes"] == {"body": ["first", "second"]}


def test_rolled_back_save_publishes_nothing(alice):
    issue = make_issue()
    before = Message.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        issue.status = "resolved"
        issue.save()
        Comment.objects.create(issue=issue, author=alice, body="x")
        make_issue(fingerprint="other")
        raise RuntimeError("roll back")
    assert Message.objects.count() == before
    assert Issue.objects.get(pk=issue.pk).status == "unresolved"


def test_messages_are_stored_in_the_save_and_delivered_only_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        issue = make_issue()
        # Stored inside the transaction already...
        assert len(published("issues")) == 1
    # ...and its fan-out (issues and issue:<id>) waits for the commit.
    fan_outs = [cb for cb in callbacks if getattr(cb, "func", None).__name__ == "_fan_out"]
    assert [cb.args[0] for cb in fan_outs] == ["issues", f"issue:{issue.pk}"]


@pytest.mark.django_db(transaction=True)
def test_autocommit_save_and_its_message_share_one_transaction():
    """Outside any atomic block (a shell), post_save still runs inside the save's transaction."""
    from django.db.models.signals import post_save

    seen = []

    def spy(sender, instance, **kwargs):
        seen.append(transaction.get_connection().in_atomic_block)

    post_save.connect(spy, sender=Issue, dispatch_uid="tests.spy")
    try:
        assert transaction.get_autocommit()
        issue = make_issue()
        issue.status = "resolved"
        issue.save()
    finally:
        post_save.disconnect(dispatch_uid="tests.spy", sender=Issue)
    assert seen == [True, True]
    assert [m["update_type"] for m in published(f"issue:{issue.pk}")] == ["created", "resolved"]
