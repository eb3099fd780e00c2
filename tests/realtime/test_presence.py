"""Presence, docs/protocol.md section 6: through the consumer, and the plain core
(realtime.presence, realtime.connections, realtime.instances)."""

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from realtime import connections, instances, presence
from realtime.models import Connection, Message, Presence, ServerInstance
from realtime.protocol import iso
from tests.conftest import access_token
from tests.realtime.helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def presence_publications(user=None) -> list[dict]:
    """Every ``presence_update`` stored so far (a delivered message is a stored one)."""
    messages = [json.loads(p) for p in Message.objects.filter(channel="presence").values_list("payload", flat=True)]
    return [m for m in messages if user is None or m["user_id"] == str(user.pk)]


@database_sync_to_async
def presence_of(user) -> Presence:
    return Presence.objects.get(user=user)


async def connect(user=None, client_id: str = "tab-1") -> Client:
    client = Client(f"/ws/{client_id}/", token=access_token(user) if user is not None else None)
    connected, _ = await client.connect()
    assert connected
    return client


async def watcher(user) -> Client:
    """A connection of ``user`` subscribed to ``presence``, with its presence_state read."""
    client = await connect(user, "watcher")
    assert (await client.request({"type": "subscribe", "channel": "presence"}))["type"] == "subscribed"
    state = await client.recv()
    assert state["type"] == "presence_state"
    return client


def assert_update(msg: dict, user, status: str, activity=None) -> None:
    assert msg["type"] == "presence_update" and msg["channel"] == "presence"
    assert msg["user_id"] == str(user.pk) and msg["status"] == status and msg["activity"] == activity
    assert isinstance(msg["seq"], int) and msg["ts"].endswith("Z") and msg["timestamp"].endswith("Z")
    assert msg["last_seen"] is None or msg["last_seen"].endswith("Z")


# --- online, tabs, status -------------------------------------------------------


async def test_first_connection_sets_online_and_publishes_presence_update(alice, bob):
    bob_ws = await watcher(bob)
    alice_ws = await connect(alice)
    update = await bob_ws.recv()
    assert_update(update, alice, "online")
    assert update["last_seen"] is not None
    assert (await presence_of(alice)).status == "online"
    assert [m["status"] for m in await presence_publications(alice)] == ["online"]
    await alice_ws.close()
    await bob_ws.close()


async def test_second_tab_is_not_a_change(alice, bob):
    bob_ws = await watcher(bob)
    tab1 = await connect(alice, "tab-1")
    assert_update(await bob_ws.recv(), alice, "online")
    tab2 = await connect(alice, "tab-2")
    assert await bob_ws.nothing(0.5)
    assert len(await presence_publications(alice)) == 1
    assert await database_sync_to_async(Connection.objects.filter(user=alice).count)() == 2
    # Closing one of two tabs is not a change either.
    await tab1.close()
    assert await bob_ws.nothing(0.5)
    assert (await presence_of(alice)).status == "online"
    await tab2.close()
    await bob_ws.close()


@pytest.mark.parametrize("status", ["away", "busy"])
async def test_away_or_busy_with_activity_is_acked_and_published(alice, bob, status):
    bob_ws = await watcher(bob)
    alice_ws = await connect(alice)
    assert_update(await bob_ws.recv(), alice, "online")
    ack = await alice_ws.request({"type": "presence", "status": status, "activity": "viewing issue 123", "ref": "p1"})
    assert ack["type"] == "presence_ack" and ack["status"] == status and ack["ref"] == "p1"
    assert_update(await bob_ws.recv(), alice, status, "viewing issue 123")
    row = await presence_of(alice)
    assert (row.status, row.activity) == (status, "viewing issue 123")
    # Back online without an activity: a change again.
    assert (await alice_ws.request({"type": "presence", "status": "online"}))["type"] == "presence_ack"
    assert_update(await bob_ws.recv(), alice, "online", None)
    await alice_ws.close()
    await bob_ws.close()


async def test_same_status_again_is_acked_but_not_published(alice, bob):
    bob_ws = await watcher(bob)
    alice_ws = await connect(alice)
    await bob_ws.recv()
    for _ in range(2):
        ack = await alice_ws.request({"type": "presence", "status": "away", "activity": "lunch"})
        assert ack["type"] == "presence_ack"
    assert_update(await bob_ws.recv(), alice, "away", "lunch")
    assert await bob_ws.nothing(0.4)
    assert [m["status"] for m in await presence_publications(alice)] == ["online", "away"]
    await alice_ws.close()
    await bob_ws.close()


async def test_away_user_opening_another_tab_stays_away(alice, bob):
    tab1 = await connect(alice, "tab-1")
    await tab1.request({"type": "presence", "status": "away"})
    bob_ws = await watcher(bob)
    tab2 = await connect(alice, "tab-2")
    assert await bob_ws.nothing(0.4)
    assert (await presence_of(alice)).status == "away"
    await tab1.close()
    await tab2.close()
    await bob_ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "presence", "status": "offline"},
        {"type": "presence", "status": "sleeping"},
        {"type": "presence"},
        {"type": "presence", "status": "away", "activity": "x" * 201},
        {"type": "presence", "status": "away", "activity": 7},
    ],
)
async def test_invalid_presence_gets_invalid_message(alice, frame):
    alice_ws = await connect(alice)
    error = await alice_ws.request({**frame, "ref": "bad"})
    assert error["type"] == "error" and error["code"] == "invalid_message" and error["ref"] == "bad"
    assert (await presence_of(alice)).status == "online"  # unchanged, and the socket stays open
    assert (await alice_ws.request({"type": "ping"}))["type"] == "pong"
    await alice_ws.close()


async def test_anonymous_presence_is_forbidden():
    anon = await connect()
    error = await anon.request({"type": "presence", "status": "away", "ref": "a1"})
    assert error["type"] == "error" and error["code"] == "forbidden" and error["ref"] == "a1"
    assert await presence_publications() == []
    await anon.close()


# --- presence_state ---------------------------------------------------------------


async def test_subscribing_to_presence_sends_state_of_everyone_not_offline(alice, bob, make_user):
    carol = await database_sync_to_async(make_user)("carol")
    dave = await database_sync_to_async(make_user)("dave")
    alice_ws = await connect(alice)
    carol_ws = await connect(carol)
    await carol_ws.request({"type": "presence", "status": "busy", "activity": "in a meeting"})
    dave_ws = await connect(dave)
    await dave_ws.close()  # dave goes offline after the grace period
    await database_sync_to_async(presence.finish_offline)(dave.pk)

    bob_ws = await connect(bob)
    subscribed = await bob_ws.request({"type": "subscribe", "channel": "presence", "ref": "s"})
    assert subscribed["type"] == "subscribed" and subscribed["ref"] == "s"
    state = await bob_ws.recv()
    assert state["type"] == "presence_state" and state["channel"] == "presence"
    users = {u["user_id"]: u for u in state["users"]}
    assert set(users) == {str(alice.pk), str(bob.pk), str(carol.pk)}
    assert users[str(carol.pk)]["status"] == "busy" and users[str(carol.pk)]["activity"] == "in a meeting"
    assert users[str(alice.pk)]["status"] == "online" and users[str(alice.pk)]["activity"] is None
    assert all(u["last_seen"].endswith("Z") for u in state["users"])
    # Then live updates.
    await alice_ws.request({"type": "presence", "status": "away"})
    assert_update(await bob_ws.recv(), alice, "away")
    for ws in (alice_ws, carol_ws, bob_ws):
        await ws.close()


async def test_presence_state_replaces_replay_of_presence_history(alice, bob):
    """Subscribing without ``since`` replays nothing: the state is the snapshot."""
    alice_ws = await connect(alice)
    await alice_ws.request({"type": "presence", "status": "away"})
    bob_ws = await connect(bob)
    await bob_ws.request({"type": "subscribe", "channel": "presence"})
    assert (await bob_ws.recv())["type"] == "presence_state"
    assert await bob_ws.nothing(0.3)
    await alice_ws.close()
    await bob_ws.close()


# --- going offline, the grace period ------------------------------------------------


async def test_last_connection_closing_sets_offline_only_after_the_grace(settings, alice, bob):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.5
    bob_ws = await watcher(bob)
    alice_ws = await connect(alice)
    assert_update(await bob_ws.recv(), alice, "online")
    await alice_ws.request({"type": "presence", "status": "away", "activity": "reading"})
    assert_update(await bob_ws.recv(), alice, "away", "reading")
    await alice_ws.close()
    closed_at = timezone.now()
    # Within the grace: still away, nothing published.
    assert await bob_ws.nothing(0.3)
    assert (await presence_of(alice)).status == "away"
    update = await bob_ws.recv(timeout=3)
    assert_update(update, alice, "offline", None)
    row = await presence_of(alice)
    assert row.status == "offline" and row.offline_pending_since is None
    # last_seen is when the last connection closed, not when the grace ran out.
    assert closed_at - timedelta(seconds=2) < row.last_seen <= closed_at
    assert update["last_seen"] == iso(row.last_seen)
    await bob_ws.close()


async def test_reload_within_the_grace_never_shows_offline(settings, alice, bob):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.6
    bob_ws = await watcher(bob)
    alice_ws = await connect(alice)
    assert_update(await bob_ws.recv(), alice, "online")
    for _ in range(3):  # three page reloads in a row
        await alice_ws.close()
        await asyncio.sleep(0.1)
        alice_ws = await connect(alice)
    # Past the grace of every close: silence, and no offline anywhere in the store.
    assert await bob_ws.nothing(1.2)
    assert [m["status"] for m in await presence_publications(alice)] == ["online"]
    row = await presence_of(alice)
    assert row.status == "online" and row.offline_pending_since is None
    await alice_ws.close()
    await bob_ws.close()


async def test_offline_user_coming_back_is_online_again(settings, alice, bob):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.1
    alice_ws = await connect(alice)
    await alice_ws.request({"type": "presence", "status": "busy"})
    await alice_ws.close()
    await asyncio.sleep(0.5)
    assert (await presence_of(alice)).status == "offline"
    bob_ws = await watcher(bob)
    alice_ws = await connect(alice)
    assert_update(await bob_ws.recv(), alice, "online")  # not busy: that ended with the session
    await alice_ws.close()
    await bob_ws.close()


# --- heartbeats -----------------------------------------------------------------------


async def test_heartbeat_writes_are_coalesced_to_one_per_interval(settings, monkeypatch, alice):
    """Pings write nothing; the hub touches connections heard from at most once per interval."""
    settings.WEBSOCKET_HEARTBEAT_INTERVAL = 1.0
    touches: list[list[str]] = []
    real_touch = connections.touch_connections

    def counting_touch(ids):
        touches.append(list(ids))
        real_touch(ids)

    monkeypatch.setattr(connections, "touch_connections", counting_touch)
    busy = await connect(alice, "busy-tab")
    idle = await connect(None, "idle-tab")
    busy_id, idle_id = busy.hello["connection_id"], idle.hello["connection_id"]
    row = await database_sync_to_async(Connection.objects.get)(id=busy_id)
    first_beat = row.last_heartbeat_at
    loop = asyncio.get_running_loop()
    started = loop.time()
    pings = 0
    while loop.time() - started < 2.6:  # 10 pings a second, under 2 x interval of silence for idle
        assert (await busy.request({"type": "ping"}))["type"] == "pong"
        pings += 1
        await asyncio.sleep(0.1)
    elapsed = loop.time() - started
    assert pings >= 15
    # At most one write per interval (plus the one a tick may start early), never one per ping.
    assert 1 <= len(touches) <= int(elapsed / 1.0) + 1
    assert all(ids.count(busy_id) <= 1 for ids in touches)
    assert sum(busy_id in ids for ids in touches) >= 1
    # A silent connection is not touched again after it was first heard from.
    assert sum(idle_id in ids for ids in touches) <= 1
    row = await database_sync_to_async(Connection.objects.get)(id=busy_id)
    assert row.last_heartbeat_at > first_beat
    await busy.close()
    await idle.close()


# --- the plain core: servers, pruning, the management command --------------------------------


def make_server(server_id: str, *, age: float = 0.0) -> ServerInstance:
    at = timezone.now() - timedelta(seconds=age)
    return ServerInstance.objects.create(id=server_id, hostname="h", pid=1, started_at=at, heartbeat_at=at)


def open_connection(connection_id: str, user, server: str) -> None:
    connections.connection_opened(
        connection_id=connection_id, client_id="tab", user_id=user.pk if user else None, server_id=server
    )


def test_dead_server_is_pruned_and_its_users_go_offline(settings, alice, bob, make_user):
    settings.WEBSOCKET_HEARTBEAT_INTERVAL = 2
    carol = make_user("carol")
    make_server("dead", age=2.5)
    make_server("live", age=0.5)
    open_connection("a1", alice, "dead")
    open_connection("c1", carol, "dead")
    open_connection("c2", carol, "live")  # carol also has a tab on a live server
    open_connection("b1", bob, "live")
    pruned = instances.prune_dead_servers()
    assert pruned == instances.Pruned(servers=1, connections=2, offline=1)
    assert set(Connection.objects.values_list("id", flat=True)) == {"c2", "b1"}
    assert ServerInstance.objects.get(id="dead").stopped_at is not None
    statuses = dict(Presence.objects.values_list("user__username", "status"))
    assert statuses == {"alice": "offline", "bob": "online", "carol": "online"}
    assert Presence.objects.get(user=alice).last_seen is not None
    offline = [json.loads(p) for p in Message.objects.filter(channel="presence").values_list("payload", flat=True)]
    assert [(m["user_id"], m["status"]) for m in offline][-1] == (str(alice.pk), "offline")
    # Idempotent.
    assert instances.prune_dead_servers() == instances.Pruned(0, 0, 0)


def test_stopped_server_leaves_its_users_the_grace_period(settings, alice):
    settings.WEBSOCKET_PRESENCE_GRACE = 5
    make_server("s1")
    open_connection("a1", alice, "s1")
    assert instances.stop_server("s1") == 1
    assert not Connection.objects.exists()
    row = Presence.objects.get(user=alice)
    assert row.status == "online" and row.offline_pending_since is not None
    # A reconnect within the grace (to any server) keeps her online...
    make_server("s2")
    open_connection("a2", alice, "s2")
    assert Presence.objects.get(user=alice).offline_pending_since is None
    # ...and without one, whoever prunes after the grace sets her offline.
    connections.connection_closed("a2", alice.pk)
    Presence.objects.filter(user=alice).update(offline_pending_since=timezone.now() - timedelta(seconds=6))
    assert instances.prune_dead_servers().offline == 1
    assert Presence.objects.get(user=alice).status == "offline"


def test_rows_a_server_wrote_after_it_stopped_are_pruned(settings, alice, bob):
    """Found by tests/integration/test_chaos.py: a handshake that finished while its
    server shut down wrote its row after stop_server() had cleared the server's
    rows. Nobody would close it (the process is gone, its row says stopped, so it
    is never judged dead): the row and the user's "online" stayed for good."""
    settings.WEBSOCKET_HEARTBEAT_INTERVAL = 2
    make_server("s1")
    make_server("live")
    open_connection("a1", alice, "s1")
    instances.stop_server("s1")
    open_connection("a2", alice, "s1")  # the late one
    open_connection("b1", bob, "live")
    assert instances.prune_dead_servers().connections == 1
    assert set(Connection.objects.values_list("id", flat=True)) == {"b1"}
    # The grace period of a stopped server's users, then offline.
    assert Presence.objects.get(user=alice).offline_pending_since is not None
    Presence.objects.filter(user=alice).update(offline_pending_since=timezone.now() - timedelta(seconds=6))
    assert instances.prune_dead_servers() == instances.Pruned(servers=0, connections=0, offline=1)
    statuses = dict(Presence.objects.values_list("user__username", "status"))
    assert statuses == {"alice": "offline", "bob": "online"}


def test_server_heartbeat_reports_vanished_rows_and_drops_leaked_ones(settings, alice, bob):
    settings.WEBSOCKET_PRESENCE_GRACE = 5
    make_server("me")
    open_connection("mine", alice, "me")
    open_connection("deleted-by-admin", alice, "me")
    open_connection("leaked", bob, "me")  # a disconnect that never ran
    Connection.objects.filter(id="leaked").update(connected_at=timezone.now() - timedelta(seconds=10))
    Connection.objects.filter(id="deleted-by-admin").delete()
    beat = instances.server_heartbeat("me", ["mine", "deleted-by-admin"], 2.0)
    assert beat == instances.Heartbeat(gone=["deleted-by-admin"], revived=False)
    assert set(Connection.objects.values_list("id", flat=True)) == {"mine"}
    assert Presence.objects.get(user=bob).offline_pending_since is not None  # the grace applies


def test_server_taken_for_dead_revives_on_its_next_heartbeat(alice):
    make_server("slow", age=100)
    open_connection("c1", alice, "slow")
    instances.prune_dead_servers(10)
    beat = instances.server_heartbeat("slow", ["c1"], 10)
    assert beat.revived and beat.gone == ["c1"]  # the hub closes them with 4503: they come back
    server = ServerInstance.objects.get(id="slow")
    assert server.stopped_at is None and server.heartbeat_at > timezone.now() - timedelta(seconds=5)
    assert instances.prune_dead_servers(10).servers == 0


def test_touch_connections_writes_last_heartbeat_and_last_seen(alice):
    make_server("s")
    open_connection("c1", alice, "s")
    old = timezone.now() - timedelta(minutes=5)
    Connection.objects.update(last_heartbeat_at=old)
    Presence.objects.update(last_seen=old)
    connections.touch_connections(["c1"])
    assert Connection.objects.get(id="c1").last_heartbeat_at > old
    assert Presence.objects.get(user=alice).last_seen > old


def test_realtime_prune_command_prints_counts(settings, capsys, alice):
    settings.REALTIME_HISTORY_TTL = 60
    make_server("dead", age=3600)
    open_connection("a1", alice, "dead")
    from realtime.publisher import publish

    publish("global", {"type": "announcement", "message": "old"})
    Message.objects.filter(channel="global").update(created_at=timezone.now() - timedelta(hours=2))
    call_command("realtime_prune")
    out = capsys.readouterr().out
    assert "servers pruned: 1" in out and "connections pruned: 1" in out
    assert "users set offline: 1" in out and "messages deleted: 1" in out
    assert Presence.objects.get(user=alice).status == "offline"
