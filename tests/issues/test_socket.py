"""What a subscribed WebSocket client receives, and the issue:/alert: channels' existence checks."""

import pytest
from channels.db import database_sync_to_async

from alerts.models import Alert
from issues.actor import acting_as
from issues.events import ingest_event
from issues.models import Comment, Issue
from tests.conftest import access_token
from tests.realtime.helpers import Client

from .helpers import assert_issue_update

pytestmark = pytest.mark.django_db(transaction=True)


async def subscribed(user, *channels: str) -> Client:
    client = Client(token=access_token(user))
    assert (await client.connect())[0]
    for channel in channels:
        reply = await client.request({"type": "subscribe", "channel": channel})
        assert reply["type"] == "subscribed", reply
    return client


async def test_subscriber_receives_issue_update_on_both_channels(alice):
    issue = await database_sync_to_async(Issue.objects.create)(title="live")
    client = await subscribed(alice, "issues", f"issue:{issue.pk}")

    def resolve():
        issue.status = "resolved"
        with acting_as(alice):
            issue.save()

    await database_sync_to_async(resolve)()
    got = {}
    for _ in range(2):
        msg = await client.recv()
        got[msg["channel"]] = msg
    data = assert_issue_update(got["issues"], "issues", issue.pk, "resolved", seq=2)
    assert_issue_update(got[f"issue:{issue.pk}"], f"issue:{issue.pk}", issue.pk, "resolved", seq=2)
    assert data["resolved_by"] == str(alice.pk)
    assert await client.nothing()
    await client.close()


async def test_assignee_receives_notification_and_others_do_not(alice, bob):
    issue = await database_sync_to_async(Issue.objects.create)(title="assign me")
    alice_client = await subscribed(alice, f"user:{alice.pk}")
    bob_client = await subscribed(bob, f"user:{bob.pk}")

    def assign():
        issue.assignee = alice
        with acting_as(bob):
            issue.save()

    await database_sync_to_async(assign)()
    note = await alice_client.recv()
    assert note["type"] == "notification" and note["kind"] == "assigned" and note["channel"] == f"user:{alice.pk}"
    assert note["issue_id"] == str(issue.pk) and note["data"] == {"title": "assign me", "by": str(bob.pk)}
    assert await bob_client.nothing()
    await alice_client.close()
    await bob_client.close()


async def test_comment_and_ingested_event_reach_subscriber(alice):
    client = await subscribed(alice, "issues")
    result = await database_sync_to_async(ingest_event)(title="from an event")
    created = await client.recv()
    assert_issue_update(created, "issues", result.issue.pk, "created", seq=1)
    await database_sync_to_async(Comment.objects.create)(issue=result.issue, author=alice, body="on it")
    commented = await client.recv()
    assert commented["update_type"] == "commented" and commented["data"]["comment"]["body"] == "on it"
    await client.close()


async def test_noop_save_sends_nothing_to_subscriber(alice):
    issue = await database_sync_to_async(Issue.objects.create)(title="quiet")
    client = await subscribed(alice, f"issue:{issue.pk}")
    await database_sync_to_async(issue.save)()
    assert await client.nothing(0.5)
    await client.close()


async def test_object_channels_of_missing_objects_are_not_found(alice):
    alert = await database_sync_to_async(Alert.objects.create)(name="a")
    issue = await database_sync_to_async(Issue.objects.create)(title="there")
    client = await subscribed(alice, f"issue:{issue.pk}", f"alert:{alert.pk}")
    for channel in ("issue:99999", "alert:99999"):
        reply = await client.request({"type": "subscribe", "channel": channel})
        assert reply["type"] == "error" and reply["code"] == "not_found" and reply["channel"] == channel
    await client.close()


async def test_object_ids_are_canonical_integers(alice):
    """``issue:0001`` is never a second name of ``issue:1`` (docs/protocol.md section 2)."""
    issue = await database_sync_to_async(Issue.objects.create)(title="there")
    client = await subscribed(alice, f"issue:{issue.pk}")
    for channel in (f"issue:{issue.pk:04d}", f"issue:+{issue.pk}", "issue:abc", f"alert:0{issue.pk}"):
        reply = await client.request({"type": "subscribe", "channel": channel})
        assert reply["type"] == "error" and reply["code"] == "unknown_channel" and reply["channel"] == channel
    await client.close()


async def test_anonymous_cannot_subscribe_to_issues():
    client = Client()
    assert (await client.connect())[0]
    reply = await client.request({"type": "subscribe", "channel": "issues"})
    assert reply["type"] == "error" and reply["code"] == "forbidden"
    await client.close()
