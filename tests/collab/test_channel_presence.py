"""Channel presence through the consumer (docs/protocol.md section 10), and its rows."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from issues.models import Issue
from realtime import channel_presence
from realtime.models import ChannelMember
from tests.conftest import access_token
from tests.realtime.helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issue(db):
    return Issue.objects.create(title="TypeError in checkout")


@pytest.fixture
def fired():
    """Every Django signal of section 10, as (signal, channel, user_id, activity)."""
    seen = []

    def receiver(name):
        def record(sender, user_id, activity, **kwargs):
            seen.append((name, sender, user_id, activity))

        return record

    receivers = {name: receiver(name) for name in ("joined", "left", "activity")}
    for name, fn in receivers.items():
        getattr(channel_presence, f"channel_{name}").connect(fn)
    yield seen
    for name, fn in receivers.items():
        getattr(channel_presence, f"channel_{name}").disconnect(fn)


async def connect(user=None, client_id="tab-1") -> Client:
    client = Client(f"/ws/{client_id}/", token=access_token(user) if user is not None else None)
    assert (await client.connect())[0]
    return client


async def join(user, channel, client_id="tab-1") -> tuple[Client, dict]:
    """A connection of ``user`` subscribed with presence; returns it and its snapshot."""
    client = await connect(user, client_id)
    reply = await client.request({"type": "subscribe", "channel": channel, "presence": True, "ref": "s"})
    assert reply["type"] == "subscribed" and reply["ref"] == "s", reply
    snapshot = await client.recv()
    assert snapshot["type"] == "channel_presence" and snapshot["channel"] == channel, snapshot
    return client, snapshot


def who(entries) -> list[tuple]:
    return [(e["username"], e["activity"], e["connections"]) for e in entries]


async def diff(client, timeout=3) -> tuple[list, list]:
    msg = await client.recv(timeout)
    assert msg["type"] == "channel_presence_diff", msg
    assert "seq" not in msg
    return who(msg["joins"]), who(msg["leaves"])


async def test_snapshot_then_diffs_of_joins_and_leaves(alice, bob, issue, fired):
    channel = f"issue:{issue.pk}"
    a, snapshot = await join(alice, channel)
    [me] = snapshot["members"]
    assert me["user_id"] == str(alice.pk) and me["username"] == "alice" and me["activity"] == "viewing"
    assert me["connections"] == 1 and me["since"].endswith("Z") and "seq" not in snapshot

    b, snapshot = await join(bob, channel, "tab-b")
    assert who(snapshot["members"]) == [("alice", "viewing", 1), ("bob", "viewing", 1)]
    assert await diff(a) == ([("bob", "viewing", 1)], [])

    assert (await b.request({"type": "unsubscribe", "channel": channel}))["type"] == "unsubscribed"
    assert await diff(a) == ([], [("bob", "viewing", 1)])
    assert await database_sync_to_async(ChannelMember.objects.filter(user=bob).count)() == 0
    assert [f[0] for f in fired if f[2] == str(bob.pk)] == ["joined", "left"]
    assert fired[0] == ("joined", channel, str(alice.pk), "viewing")
    await a.close()
    await b.close()


async def test_two_tabs_of_one_user_are_one_member(alice, bob, issue, fired, settings):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.5
    channel = f"issue:{issue.pk}"
    b, _ = await join(bob, channel, "tab-b")
    tab1, _ = await join(alice, channel, "tab-1")
    assert await diff(b) == ([("alice", "viewing", 1)], [])
    tab2, snapshot = await join(alice, channel, "tab-2")
    assert who(snapshot["members"]) == [("alice", "viewing", 2), ("bob", "viewing", 1)]
    # One member whose entry changed: a leave of the old entry and a join of the new.
    assert await diff(b) == ([("alice", "viewing", 2)], [("alice", "viewing", 1)])
    await tab1.close()
    # After the grace, one tab is left: still a member, with one connection.
    assert await diff(b, timeout=5) == ([("alice", "viewing", 1)], [("alice", "viewing", 2)])
    await tab2.close()
    assert await diff(b, timeout=5) == ([], [("alice", "viewing", 1)])
    assert [f[0] for f in fired if f[2] == str(alice.pk)] == ["joined", "left"]
    await b.close()


async def test_a_reload_within_the_grace_is_no_leave(alice, bob, issue, settings):
    settings.WEBSOCKET_PRESENCE_GRACE = 2
    channel = f"issue:{issue.pk}"
    b, _ = await join(bob, channel, "tab-b")
    a, _ = await join(alice, channel)
    assert await diff(b) == ([("alice", "viewing", 1)], [])
    since = (await database_sync_to_async(ChannelMember.objects.get)(user=alice)).since
    await a.close()
    a, snapshot = await join(alice, channel)  # the page reloaded: same tab, new connection
    assert who(snapshot["members"]) == [("alice", "viewing", 1), ("bob", "viewing", 1)]
    assert await b.nothing(2.5)  # past the grace: neither a leave nor a join
    row = await database_sync_to_async(ChannelMember.objects.get)(user=alice)
    assert row.since == since and row.left_at is None
    await a.close()
    assert await diff(b, timeout=5) == ([], [("alice", "viewing", 1)])
    await b.close()


async def test_activity_is_per_channel_and_a_leave_plus_join(alice, bob, issue, fired):
    channel = f"issue:{issue.pk}"
    b, _ = await join(bob, channel, "tab-b")
    a, _ = await join(alice, channel)
    await diff(b)
    ack = await a.request({"type": "presence", "channel": channel, "activity": "commenting", "ref": "p"})
    assert ack == {"type": "presence_ack", "channel": channel, "activity": "commenting", "ref": "p"}
    assert await diff(b) == ([("alice", "commenting", 1)], [("alice", "viewing", 1)])
    assert await diff(a) == ([("alice", "commenting", 1)], [("alice", "viewing", 1)])
    assert ("activity", channel, str(alice.pk), "commenting") in fired
    row = await database_sync_to_async(ChannelMember.objects.get)(user=alice)
    assert row.activity == "commenting"
    # null is the default again
    ack = await a.request({"type": "presence", "channel": channel, "activity": None})
    assert ack["activity"] == "viewing"
    assert await diff(b) == ([("alice", "viewing", 1)], [("alice", "commenting", 1)])
    await a.close()
    await b.close()


async def test_bad_channel_presence_requests_get_clear_errors(alice, issue):
    a = await connect(alice)
    channel = f"issue:{issue.pk}"
    # Held without presence, or not held: invalid_message.
    assert (await a.request({"type": "subscribe", "channel": channel}))["type"] == "subscribed"
    err = await a.request({"type": "presence", "channel": channel, "activity": "x", "ref": "r"})
    assert err["type"] == "error" and err["code"] == "invalid_message" and err["ref"] == "r"
    err = await a.request({"type": "presence", "channel": "issue:999999", "activity": "x"})
    assert err["code"] == "invalid_message"
    err = await a.request({"type": "presence", "channel": channel, "activity": "x" * 201})
    assert err["code"] == "invalid_message"
    # A kind without presence; a presence flag that is not a boolean.
    err = await a.request({"type": "subscribe", "channel": "issues", "presence": True})
    assert err["code"] == "invalid_message" and err["channel"] == "issues"
    err = await a.request({"type": "subscribe", "channel": channel, "presence": "yes"})
    assert err["code"] == "invalid_message"
    # The connection still serves.
    assert (await a.request({"type": "ping", "timestamp": 1}))["type"] == "pong"
    await a.close()
    anonymous = await connect(None, "anon")
    err = await anonymous.request({"type": "subscribe", "channel": channel, "presence": True})
    assert err["code"] == "forbidden"
    await anonymous.close()


async def test_resubscribing_keeps_one_membership(alice, issue):
    channel = f"issue:{issue.pk}"
    a, _ = await join(alice, channel)
    assert (await a.request({"type": "subscribe", "channel": channel, "presence": True}))["type"] == "subscribed"
    assert await a.nothing(0.5)  # no second snapshot, no diff
    assert await database_sync_to_async(ChannelMember.objects.count)() == 1
    await a.close()


def test_join_and_leave_cost_one_write_each(alice, issue):
    from django.utils import timezone

    from realtime.models import Connection, ServerInstance

    now = timezone.now()
    ServerInstance.objects.create(id="s1", hostname="h", pid=1, started_at=now, heartbeat_at=now)
    Connection.objects.create(
        id="c1", client_id="t", user=alice, server_id="s1", connected_at=now, last_heartbeat_at=now
    )
    channel = f"issue:{issue.pk}"

    def writes(fn, *args) -> int:
        with CaptureQueriesContext(connection) as ctx:
            fn(*args)
        return sum(q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) for q in ctx.captured_queries)

    assert writes(channel_presence.join, channel, alice.pk, "c1", "s1") == 1
    assert writes(channel_presence.set_activity, channel, alice.pk, "c1", "typing") == 1
    assert writes(channel_presence.leave, channel, alice.pk, "c1") == 1
    assert writes(channel_presence.join, channel, alice.pk, "c1", "s1") == 1
    assert writes(channel_presence.connection_closed, "c1") == 1  # every channel of the connection at once
    assert writes(channel_presence.join, channel, alice.pk, "c2", "s1") == 1  # a reload takes the row over


@pytest.fixture
def row_writes(db):
    """Rows written per table by every connection and thread (SQLite triggers, as bench/presence.py)."""
    if connection.vendor != "sqlite":
        pytest.skip("counted with SQLite triggers")
    tables = [t for t in connection.introspection.table_names() if not t.startswith("sqlite_")]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_row_writes (tbl TEXT, op TEXT)")
        for table in tables:
            for op in ("INSERT", "UPDATE", "DELETE"):
                cursor.execute(
                    f'CREATE TRIGGER "test_w_{table}_{op}" AFTER {op} ON "{table}" FOR EACH ROW '
                    f"BEGIN INSERT INTO test_row_writes VALUES ('{table}', '{op}'); END"
                )

    def read() -> list[tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tbl, op FROM test_row_writes ORDER BY rowid")
            rows = cursor.fetchall()
            cursor.execute("DELETE FROM test_row_writes")
        return rows

    yield database_sync_to_async(read)
    with connection.cursor() as cursor:
        for table in tables:
            for op in ("INSERT", "UPDATE", "DELETE"):
                cursor.execute(f'DROP TRIGGER "test_w_{table}_{op}"')
        cursor.execute("DROP TABLE test_row_writes")


async def test_a_join_and_a_leave_over_the_socket_write_one_row_each(alice, bob, issue, row_writes):
    """The subscribe/unsubscribe as a whole, not only its ChannelMember row: one write each."""
    channel = f"issue:{issue.pk}"
    b, _ = await join(bob, channel, "tab-b")
    a = await connect(alice)
    await row_writes()
    assert (await a.request({"type": "subscribe", "channel": channel, "presence": True}))["type"] == "subscribed"
    assert (await a.recv())["type"] == "channel_presence"
    assert await diff(b) == ([("alice", "viewing", 1)], [])
    assert (await a.request({"type": "ping"}))["type"] == "pong"  # frames are handled in turn: the subscribe is done
    assert await row_writes() == [("realtime_channelmember", "INSERT")]
    assert (await a.request({"type": "unsubscribe", "channel": channel}))["type"] == "unsubscribed"
    assert await diff(b) == ([], [("alice", "viewing", 1)])
    assert (await a.request({"type": "ping"}))["type"] == "pong"
    assert await row_writes() == [("realtime_channelmember", "DELETE")]
    # A channel held without channel presence is recorded in the connection's row.
    assert (await a.request({"type": "subscribe", "channel": "issues"}))["type"] == "subscribed"
    assert (await a.request({"type": "ping"}))["type"] == "pong"
    assert await row_writes() == [("realtime_connection", "UPDATE")]
    await a.close()
    await b.close()


def test_stats_and_admin_count_channels_held_with_presence(alice, staff, issue, auth_api, client):
    from django.utils import timezone

    from realtime import connections
    from realtime.models import Connection, ServerInstance

    now = timezone.now()
    ServerInstance.objects.create(id="s1", hostname="h", pid=1, started_at=now, heartbeat_at=now)
    Connection.objects.create(
        id="c1", client_id="t", user=alice, server_id="s1", connected_at=now, last_heartbeat_at=now
    )
    connections.update_subscriptions("c1", ["issues"])
    channel_presence.join(f"issue:{issue.pk}", alice.pk, "c1", "s1")
    body = auth_api(staff).get("/api/realtime/stats/").json()
    assert body["subscriptions"] == {"issues": 1, f"issue:{issue.pk}": 1}
    client.force_login(staff)
    html = client.get("/admin/realtime/connection/").content.decode()
    assert f"issue:{issue.pk}, issues" in html


async def test_http_presence_endpoint_follows_the_channel_policy(alice, bob, issue, auth_api, api):
    channel = f"issue:{issue.pk}"
    a, _ = await join(alice, channel)
    b, _ = await join(bob, channel, "tab-b")
    response = await database_sync_to_async(auth_api(bob).get)(f"/api/realtime/channels/{channel}/presence/")
    assert response.status_code == 200
    body = response.json()
    assert body["channel"] == channel and body["count"] == 2
    assert who(body["members"]) == [("alice", "viewing", 1), ("bob", "viewing", 1)]
    get = database_sync_to_async(lambda client, path: client.get(path).status_code)
    assert await get(api, f"/api/realtime/channels/{channel}/presence/") == 401
    assert await get(auth_api(bob), "/api/realtime/channels/issue:999999/presence/") == 404
    assert await get(auth_api(bob), "/api/realtime/channels/nope:1/presence/") == 404
    assert await get(auth_api(bob), "/api/realtime/channels/issues/presence/") == 404
    assert await get(auth_api(bob), f"/api/realtime/channels/user:{alice.pk}/presence/") == 403
    await a.close()
    await b.close()


def test_admin_shows_who_is_on_which_channel(alice, staff, issue, client):
    from django.utils import timezone

    now = timezone.now()
    ChannelMember.objects.create(
        channel=f"issue:{issue.pk}", user=alice, connection_id="c1", server_id="s1", activity="triaging",
        since=now, updated_at=now,
    )  # fmt: skip
    client.force_login(staff)
    page = client.get("/admin/realtime/channelmember/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"issue:{issue.pk}" in html and "alice" in html and "triaging" in html


async def test_alert_channels_have_presence_too(alice):
    from alerts.models import Alert

    alert = await database_sync_to_async(Alert.objects.create)(name="errors", condition="threshold", threshold=1)
    a, snapshot = await join(alice, f"alert:{alert.pk}")
    assert who(snapshot["members"]) == [("alice", "viewing", 1)]
    await a.close()


async def test_closing_while_others_watch_releases_after_the_grace(alice, bob, issue, settings):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.3
    channel = f"issue:{issue.pk}"
    b, _ = await join(bob, channel, "tab-b")
    a, _ = await join(alice, channel)
    await diff(b)
    await a.close()
    assert await diff(b, timeout=5) == ([], [("alice", "viewing", 1)])
    await asyncio.sleep(0)
    assert not await database_sync_to_async(ChannelMember.objects.filter(user=alice).exists)()
    await b.close()


async def test_member_counts_per_kind_for_the_issue_list(alice, bob, issue, auth_api):
    other = await database_sync_to_async(Issue.objects.create)(title="another")
    a, _ = await join(alice, f"issue:{issue.pk}")
    b, _ = await join(bob, f"issue:{issue.pk}", "tab-b")
    b2, _ = await join(bob, f"issue:{other.pk}", "tab-b2")
    get = database_sync_to_async(lambda path: auth_api(alice).get(path))
    response = await get("/api/realtime/channels/presence/?kind=issue")
    assert response.status_code == 200
    assert response.json() == {"kind": "issue", "counts": {f"issue:{issue.pk}": 2, f"issue:{other.pk}": 1}}
    assert (await get("/api/realtime/channels/presence/?kind=issues")).status_code == 400
    assert (await get("/api/realtime/channels/presence/")).status_code == 400
    for client in (a, b, b2):
        await client.close()
