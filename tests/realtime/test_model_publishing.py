"""``publish_model``: a project's model publishes its own saves and deletes (realtime/model_publishing.py).

Dexter's Alert and Comment models stand in for a project's ``Order`` here (the
startproject test in tests/test_packaging.py uses a real one); Dexter's issues and
comments themselves publish through ``track_changes`` (tests/issues).
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import F

from alerts.models import Alert
from issues.models import Comment, Issue
from issues.publishing import track_issues_and_comments
from realtime import publisher
from realtime.model_publishing import publish_model, track_changes, unpublish_model
from realtime.models import Message
from tests.conftest import access_token
from tests.realtime.helpers import Client


def published(channel: str, type_: str = "alert_update") -> list[dict]:
    rows = Message.objects.filter(channel=channel, type=type_).order_by("seq")
    return [json.loads(row.payload) for row in rows]


@pytest.fixture
def alerts_published():
    publisher = publish_model(Alert, channel=["alerts", "alert:{pk}"], fields=["name", "severity", "threshold"])
    yield publisher
    unpublish_model(Alert)


@pytest.mark.django_db
def test_created_updated_deleted_with_field_level_changes(alerts_published):
    alert = Alert.objects.create(name="High error rate", threshold=100)
    alert.threshold = 120
    alert.severity = "critical"
    alert.save()
    pk = alert.pk
    alert.delete()
    messages = published(f"alert:{pk}")
    assert [m["update_type"] for m in messages] == ["created", "updated", "deleted"]
    assert [m["seq"] for m in messages] == [1, 2, 3]
    created, updated, deleted = messages
    assert created["type"] == "alert_update" and created["id"] == str(pk) and created["channel"] == f"alert:{pk}"
    assert created["data"] == {"name": "High error rate", "severity": "warning", "threshold": 100, "changes": {}}
    assert updated["data"]["changes"] == {"threshold": [100, 120], "severity": ["warning", "critical"]}
    assert updated["data"]["threshold"] == 120 and updated["data"]["name"] == "High error rate"
    assert deleted["data"]["changes"] == {} and deleted["data"]["threshold"] == 120
    assert [m["update_type"] for m in published("alerts")] == ["created", "updated", "deleted"]


@pytest.mark.django_db
def test_a_save_that_changes_nothing_publishes_nothing(alerts_published):
    alert = Alert.objects.create(name="a")
    before = Message.objects.count()
    alert.save()
    Alert.objects.get(pk=alert.pk).save()
    alert.window_seconds = 5  # not a tracked field
    alert.save()
    assert Message.objects.count() == before


@pytest.mark.django_db
def test_a_stale_instance_publishes_what_changed_in_the_row(alerts_published):
    alert = Alert.objects.create(name="a", threshold=1)
    stale = Alert.objects.get(pk=alert.pk)
    alert.threshold = 2
    alert.save()
    stale.threshold = 2  # the row has 2 already: no change
    stale.save()
    assert [m["update_type"] for m in published(f"alert:{alert.pk}")] == ["created", "updated"]


@pytest.mark.django_db
def test_update_fields_and_expressions_publish_the_written_values(alerts_published):
    alert = Alert.objects.create(name="a", threshold=1)
    alert.threshold = F("threshold") + 10
    alert.name = "not written"
    alert.save(update_fields=["threshold"])
    last = published(f"alert:{alert.pk}")[-1]
    assert last["data"]["changes"] == {"threshold": [1, 11]} and last["data"]["name"] == "a"


@pytest.mark.django_db
def test_a_rolled_back_save_publishes_nothing(alerts_published):
    with pytest.raises(RuntimeError), transaction.atomic():
        Alert.objects.create(name="gone")
        raise RuntimeError
    assert not Message.objects.filter(type="alert_update").exists()


@pytest.mark.django_db
def test_the_message_is_stored_in_the_save_and_sent_after_commit(alerts_published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            alert = Alert.objects.create(name="a")
            # Stored inside the transaction, with the row.
            assert Message.objects.filter(channel=f"alert:{alert.pk}").count() == 1
        # Delivered only at commit: one fan-out per channel (the app's own hooks,
        # such as the alert rules' cache being emptied, are not counted).
    fan_outs = [c for c in callbacks if getattr(c, "func", None) is publisher._fan_out]
    assert [c.args[0] for c in fan_outs] == ["alerts", f"alert:{alert.pk}"]


@pytest.mark.django_db
def test_an_autocommit_save_is_atomic_with_its_message(alerts_published, monkeypatch):
    """A failed store rolls the save back: no row without its message, and no message without its row."""
    import realtime.model_publishing as mp

    def failing(channel, message):
        raise RuntimeError("store down")

    monkeypatch.setattr(mp, "publish", failing)
    with pytest.raises(RuntimeError):
        Alert.objects.create(name="never")
    assert not Alert.objects.filter(name="never").exists()


@pytest.fixture
def comment_as_a_project_model():
    """Comment published the way a project's model would be: publish_model replaces
    Dexter's own tracking of it (issues.publishing) for the test, which is put back after."""
    yield Comment
    track_issues_and_comments()


@pytest.mark.django_db
def test_a_serializer_and_a_channel_function_shape_the_message(alice, comment_as_a_project_model):
    issue = Issue.objects.create(title="t")
    publish_model(
        Comment,
        channel=lambda comment: "global",
        fields=["body", "author"],
        serializer=lambda comment: {"body": comment.body, "issue": str(comment.issue_id)},
        message_type="comment_changed",
    )
    try:
        comment = Comment.objects.create(issue=issue, author=alice, body="hi")
        comment.body = "hello"
        comment.save()
    finally:
        unpublish_model(Comment)
    messages = published("global", "comment_changed")
    assert [m["data"] for m in messages] == [
        {"body": "hi", "issue": str(issue.pk), "changes": {}},
        {"body": "hello", "issue": str(issue.pk), "changes": {"body": ["hi", "hello"]}},
    ]


@pytest.mark.django_db
def test_foreign_keys_are_published_as_string_ids(alice, comment_as_a_project_model):
    issue = Issue.objects.create(title="t")
    publish_model(Comment, channel="global", fields=["author", "issue"])
    try:
        Comment.objects.create(issue=issue, author=alice, body="hi")
    finally:
        unpublish_model(Comment)
    (message,) = published("global", "comment_update")
    assert message["data"] == {"author": str(alice.pk), "issue": str(issue.pk), "changes": {}}


@pytest.mark.django_db
def test_the_decorator_form_publishes_and_returns_the_model():
    decorated = publish_model(channel="global")(Alert)
    try:
        assert decorated is Alert
        alert = Alert.objects.create(name="decorated")
    finally:
        unpublish_model(Alert)
    assert published("global")[-1]["id"] == str(alert.pk)


@pytest.mark.django_db
def test_track_changes_hands_each_change_to_on_change_instead_of_publishing():
    """For a message shape publish_model cannot make (Dexter's issue_update): the same
    tracking, and the caller builds and publishes its own messages."""
    seen = []

    def on_change(alert, update_type, state, changes):
        seen.append((alert.pk, update_type, state, changes))

    track_changes(Alert, fields=["name", "threshold"], on_change=on_change)
    try:
        alert = Alert.objects.create(name="a", threshold=1)
        alert.save()  # nothing changed: no call
        alert.threshold = 2
        alert.save()
        pk = alert.pk
        alert.delete()
    finally:
        unpublish_model(Alert)
    assert seen == [
        (pk, "created", {"name": "a", "threshold": 1}, {}),
        (pk, "updated", {"name": "a", "threshold": 2}, {"threshold": [1, 2]}),
        (pk, "deleted", {"name": "a", "threshold": 2}, {}),
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_save_reaches_a_subscribed_socket(alerts_published, alice):
    client = Client(token=access_token(alice))
    await client.connect()
    assert (await client.request({"type": "subscribe", "channel": "alerts"}))["type"] == "subscribed"
    alert = await database_sync_to_async(Alert.objects.create)(name="live")
    message = await client.recv()
    assert message["type"] == "alert_update" and message["update_type"] == "created" and message["id"] == str(alert.pk)
    await client.close()
