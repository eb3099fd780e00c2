"""``POST /api/realtime/presence/``: the ``presence`` message over HTTP, for clients on SSE
(docs/protocol.md section 7)."""

import json

import pytest

from realtime.models import Message, Presence

pytestmark = pytest.mark.django_db


def test_post_sets_status_and_activity_and_publishes_presence_update(auth_api, alice):
    resp = auth_api(alice).post(
        "/api/realtime/presence/", {"status": "away", "activity": "viewing issue 123"}, format="json"
    )
    assert resp.status_code == 200
    assert resp.json() == {"type": "presence_ack", "status": "away", "activity": "viewing issue 123"}
    row = Presence.objects.get(user=alice)
    assert (row.status, row.activity) == ("away", "viewing issue 123")
    published = json.loads(Message.objects.filter(channel="presence").latest("seq").payload)
    assert published["type"] == "presence_update" and published["user_id"] == str(alice.pk)
    assert (published["status"], published["activity"]) == ("away", "viewing issue 123")
    # The same status again is not a change: nothing more is published.
    count = Message.objects.filter(channel="presence").count()
    auth_api(alice).post("/api/realtime/presence/", {"status": "away", "activity": "viewing issue 123"}, format="json")
    assert Message.objects.filter(channel="presence").count() == count


@pytest.mark.parametrize(
    "body",
    [
        {"status": "sleeping"},
        {},
        {"status": "busy", "activity": "x" * 201},
        {"status": "busy", "activity": 5},
        ["online"],
    ],
)
def test_post_refuses_what_the_socket_refuses(auth_api, alice, body):
    resp = auth_api(alice).post("/api/realtime/presence/", body, format="json")
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_message"
    assert not Presence.objects.filter(user=alice, status="busy").exists()


def test_post_needs_a_signed_in_user(api):
    assert api.post("/api/realtime/presence/", {"status": "online"}, format="json").status_code == 401
