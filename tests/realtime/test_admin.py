"""The real-time tables in the Django admin, and its "disconnect selected connections" action."""

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.test import Client as HttpClient
from django.utils import timezone

from realtime import connections, presence
from realtime.models import Connection, ServerInstance
from realtime.publisher import publish
from tests.conftest import access_token
from tests.realtime.helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/realtime/connection/"


@pytest.fixture
def data(alice, bob):
    """Two servers, three connections, presence rows and some history."""
    now = timezone.now()
    ServerInstance.objects.create(id="server-a" + "0" * 24, hostname="web-1", pid=101, started_at=now, heartbeat_at=now)
    ServerInstance.objects.create(id="server-b" + "0" * 24, hostname="web-2", pid=202, started_at=now, heartbeat_at=now)
    for cid, user, server in [
        ("conn-a1", alice, "server-a"),
        ("conn-a2", alice, "server-b"),
        ("conn-b1", bob, "server-b"),
    ]:
        connections.connection_opened(
            connection_id=cid,
            client_id="tab-" + cid[-2:],
            user_id=user.pk,
            server_id=server + "0" * 24,
            ip="10.0.0.7",
            user_agent="Mozilla/5.0 test",
        )
    connections.update_subscriptions("conn-b1", ["issues", "presence"])
    presence.set_status(bob.pk, "busy", "triaging issue 123")
    publish("global", {"type": "announcement", "message": "System maintenance"})


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/admin/realtime/presence/", ["alice", "bob", "triaging issue 123", "busy"]),
        ("/admin/realtime/presence/?status__exact=busy", ["bob", "triaging issue 123"]),
        ("/admin/realtime/presence/?q=alice", ["alice"]),
        (CHANGELIST, ["conn-a1", "conn-a2", "conn-b1", "10.0.0.7", "issues, presence", "Disconnect selected"]),
        (CHANGELIST + "?server__id__exact=server-b" + "0" * 24, ["conn-a2", "conn-b1"]),
        (CHANGELIST + "?q=tab-b1", ["conn-b1"]),
        ("/admin/realtime/serverinstance/", ["web-1", "web-2", "101", "202"]),
        ("/admin/realtime/message/", ["global", "announcement"]),
        ("/admin/realtime/channelsequence/", ["global", "presence"]),
        ("/admin/realtime/connection/conn-b1/change/", ["Mozilla/5.0 test", "conn-b1"]),
    ],
)
def test_changelists_render_with_data(admin_client, data, path, expected):
    response = admin_client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    for text in expected:
        assert text in body, text


@pytest.mark.parametrize(
    "path, rows",
    [
        ("/admin/realtime/presence/?status__exact=busy", {"bob"}),
        ("/admin/realtime/presence/?q=ali", {"alice"}),
        (CHANGELIST + "?server__id__exact=server-b" + "0" * 24, {"conn-a2", "conn-b1"}),
        (CHANGELIST + "?q=tab-b1", {"conn-b1"}),
        (CHANGELIST + "?q=alice", {"conn-a1", "conn-a2"}),
    ],
)
def test_filters_and_search_narrow_the_list(admin_client, data, path, rows):
    result = admin_client.get(path).context["cl"].result_list
    label = (lambda c: c.id) if path.startswith(CHANGELIST) else (lambda p: p.user.username)
    assert {label(obj) for obj in result} == rows


def test_rows_are_read_only(admin_client, data):
    assert admin_client.get("/admin/realtime/connection/add/").status_code == 403
    body = admin_client.get("/admin/realtime/connection/conn-b1/change/").content.decode()
    assert 'name="client_id"' not in body  # shown, not editable
    assert "delete_selected" not in admin_client.get(CHANGELIST).content.decode()


def test_disconnect_action_needs_the_delete_connection_permission(data, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw-xxxxxxxx", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_connection"))
    http = HttpClient()
    http.force_login(viewer)
    assert http.get(CHANGELIST).status_code == 200
    assert "disconnect_selected" not in http.get(CHANGELIST).content.decode()
    http.post(CHANGELIST, {"action": "disconnect_selected", ACTION_CHECKBOX_NAME: ["conn-b1"]})
    assert Connection.objects.filter(id="conn-b1").exists()


async def test_disconnect_action_closes_a_live_connection_with_4403(admin_client, alice, bob):
    alice_ws = Client("/ws/tab-1/", token=access_token(alice))
    bob_ws = Client("/ws/tab-1/", token=access_token(bob))
    assert (await alice_ws.connect())[0] and (await bob_ws.connect())[0]
    connection_id = alice_ws.hello["connection_id"]
    # The admin's request runs in a thread of its own, as under the server.
    response = await sync_to_async(admin_client.post, thread_sensitive=False)(
        CHANGELIST, {"action": "disconnect_selected", ACTION_CHECKBOX_NAME: [connection_id]}, follow=True
    )
    assert response.status_code == 200
    assert "Disconnected 1 connection." in response.content.decode()
    assert await alice_ws.closed_with(timeout=3) == 4403
    assert not await database_sync_to_async(Connection.objects.filter(id=connection_id).exists)()
    # Only the selected one.
    assert (await bob_ws.request({"type": "ping"}))["type"] == "pong"
    await alice_ws.close()
    await bob_ws.close()


async def test_row_deleted_by_another_process_closes_on_the_next_heartbeat(settings, alice):
    """What the action does for a connection of another server: its hub sees the row gone."""
    settings.WEBSOCKET_HEARTBEAT_INTERVAL = 0.4
    alice_ws = Client("/ws/tab-1/", token=access_token(alice))
    assert (await alice_ws.connect())[0]
    connection_id = alice_ws.hello["connection_id"]
    await database_sync_to_async(Connection.objects.filter(id=connection_id).delete)()
    assert await alice_ws.closed_with(timeout=2) == 4403
    await alice_ws.close()
