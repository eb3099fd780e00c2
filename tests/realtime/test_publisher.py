"""publish(): stored in the caller's transaction, delivered only after commit."""

import json

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from realtime.manager import WebSocketManager
from realtime.models import ChannelSequence, Message
from realtime.publisher import history, prune_history, publish
from tests.conftest import access_token
from tests.realtime.helpers import Client


@pytest.mark.django_db
def test_publish_stores_the_frame_with_its_envelope():
    sent = publish("global", {"type": "announcement", "message": "hi"})
    row = Message.objects.get(channel="global", seq=1)
    assert json.loads(row.payload) == sent
    assert sent["seq"] == 1 and sent["channel"] == "global" and sent["ts"].endswith("Z")


@pytest.mark.django_db
def test_publish_refuses_unknown_channels_and_typeless_messages():
    from realtime.protocol import ProtocolError

    with pytest.raises(ProtocolError):
        publish("nope", {"type": "x"})
    with pytest.raises(ValueError):
        publish("global", {"message": "no type"})
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_fan_out_waits_for_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            publish("global", {"type": "announcement", "message": "a"})
            assert len(callbacks) == 0
    assert len(callbacks) == 1


@pytest.mark.django_db(transaction=True)
async def test_rolled_back_publication_is_neither_stored_nor_delivered():
    client = Client()
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})

    def rolled_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            publish("global", {"type": "announcement", "message": "never"})
            raise RuntimeError("the save failed")

    await database_sync_to_async(rolled_back)()
    assert await client.nothing(0.6)  # longer than the poll interval
    assert await database_sync_to_async(Message.objects.count)() == 0
    await database_sync_to_async(publish)("global", {"type": "announcement", "message": "next"})
    assert (await client.recv())["seq"] == 1  # the rolled-back seq was not used up
    await client.close()


@pytest.mark.django_db(transaction=True)
def test_a_broken_channel_layer_never_fails_the_save(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1"]}}
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        with transaction.atomic():
            sent = publish("global", {"type": "announcement", "message": "stored anyway"})
        assert Message.objects.filter(seq=sent["seq"]).exists()
    finally:
        channel_layers.backends.clear()


@pytest.mark.django_db
def test_sequences_are_per_channel():
    publish("global", {"type": "announcement", "message": "a"})
    publish("global", {"type": "announcement", "message": "b"})
    assert publish("issues", {"type": "issue_update"})["seq"] == 1
    assert ChannelSequence.objects.get(channel="global").last_seq == 2


@pytest.mark.django_db
def test_prune_keeps_the_newest_per_channel_and_history_says_what_is_lost(settings):
    for i in range(5):
        publish("global", {"type": "announcement", "message": str(i)})
    settings.REALTIME_HISTORY_SIZE = 2
    assert prune_history() == 3
    rows, recovered, latest = history("global", 0, 100)
    assert [seq for seq, _ in rows] == [4, 5] and recovered is False and latest == 5
    assert history("global", 3, 100)[1] is True


@pytest.mark.django_db
def test_prune_drops_messages_past_the_ttl(settings):
    publish("global", {"type": "announcement", "message": "old"})
    Message.objects.update(created_at="2000-01-01T00:00:00Z")
    assert prune_history() == 1


@pytest.mark.django_db
def test_seed_manager_calls_publish_on_both_issue_channels():
    first, second = WebSocketManager().notify_issue_update_sync(
        issue_id="123", update_type="resolved", data={"resolved_by": "7", "title": "Issue Title"}
    )
    assert (first["channel"], second["channel"]) == ("issues", "issue:123")
    assert first["issue_id"] == "123" and first["update_type"] == "resolved"
    assert WebSocketManager().broadcast_sync({"type": "announcement", "message": "m"}, channel="global")["seq"] == 1


@pytest.mark.django_db(transaction=True)
async def test_seed_async_manager_reaches_a_subscriber(alice):
    client = Client(token=access_token(alice))
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})
    await WebSocketManager().broadcast({"type": "announcement", "message": "System maintenance"}, channel="global")
    msg = await client.recv()
    assert msg["type"] == "announcement" and msg["message"] == "System maintenance"
    await client.close()


# --- REST history -------------------------------------------------------------


@pytest.mark.django_db
def test_history_endpoint_follows_the_channel_policy(api, auth_api, alice, bob):
    publish("global", {"type": "announcement", "message": "a"})
    publish(f"user:{alice.pk}", {"type": "notification", "kind": "mention"})
    body = api.get("/api/realtime/channels/global/history/?since=0").json()
    assert body["type"] == "history" and [m["seq"] for m in body["messages"]] == [1] and body["recovered"]
    assert api.get(f"/api/realtime/channels/user:{alice.pk}/history/").status_code == 401
    assert auth_api(bob).get(f"/api/realtime/channels/user:{alice.pk}/history/").status_code == 403
    own = auth_api(alice).get(f"/api/realtime/channels/user:{alice.pk}/history/")
    assert own.status_code == 200 and own.json()["messages"][0]["kind"] == "mention"
    assert api.get("/api/realtime/channels/nope/history/").status_code == 404
    assert api.get("/api/realtime/channels/global/history/?since=x").status_code == 400
