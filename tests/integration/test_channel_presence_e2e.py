"""Channel presence and signals on real server processes (docs/protocol.md sections 10 and 11).

- One server: every message of both sections over a real socket; two tabs of
  one user are one member, and a reload within the grace is no leave.
- Two servers on one SQLite file, no Redis: a member on A is a member on B (the
  tracker's poll of the rows), and a SIGKILLed A's members leave B's view within
  2 x the heartbeat, as its users go offline in global presence.
- PostgreSQL and Redis: a member on A is seen by a subscriber on B at once, and a
  signal sent on A reaches B.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
import websockets

from .conftest import prepare_database, server_env
from .test_scale_out import start_all, wait_for_fanout_members

pytestmark = pytest.mark.integration

HEARTBEAT = 2.0
FAST = {"WEBSOCKET_HEARTBEAT_INTERVAL": str(HEARTBEAT), "WEBSOCKET_PRESENCE_GRACE": "1"}
_db_names = itertools.count()


async def recv(ws, timeout: float = 5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws, kind: str, timeout: float = 5.0) -> dict:
    """The next message of type ``kind`` (heartbeat pongs and the like skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == kind:
            return msg


async def open_ws(server, user: str, client_id: str):
    """A signed-in socket that pings every half interval, as the JS client does."""
    ws = await websockets.connect(server.ws_url(client_id, await asyncio.to_thread(server.token, user)))
    assert (await recv(ws))["type"] == "connection"

    async def ping():
        while True:
            await asyncio.sleep(HEARTBEAT / 2)
            try:
                await ws.send(json.dumps({"type": "ping"}))
            except websockets.ConnectionClosed:
                return

    ws.pinger = asyncio.ensure_future(ping())
    return ws


async def join(ws, channel: str) -> dict:
    await ws.send(json.dumps({"type": "subscribe", "channel": channel, "presence": True}))
    assert (await until(ws, "subscribed"))["channel"] == channel
    snapshot = await until(ws, "channel_presence")
    assert snapshot["type"] == "channel_presence", snapshot
    return snapshot


def names(entries) -> list[tuple]:
    return [(e["username"], e["activity"], e["connections"]) for e in entries]


def new_issue(server) -> str:
    status, body = server.request("POST", "/api/issues/", {"title": "TypeError in checkout"}, server.token("admin"))
    assert status == 201
    return f"issue:{body['id']}"


async def test_every_message_of_sections_10_and_11_on_one_server(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, **FAST}).start()
    channel = new_issue(server)
    alice = await open_ws(server, "alice", "tab-a")
    bob = await open_ws(server, "bob", "tab-b")
    assert names((await join(alice, channel))["members"]) == [("alice", "viewing", 1)]
    assert names((await join(bob, channel))["members"]) == [("alice", "viewing", 1), ("bob", "viewing", 1)]
    d = await until(alice, "channel_presence_diff")
    assert names(d["joins"]) == [("bob", "viewing", 1)] and d["leaves"] == []

    await bob.send(json.dumps({"type": "presence", "channel": channel, "activity": "commenting"}))
    assert (await until(bob, "presence_ack"))["channel"] == channel
    d = await until(alice, "channel_presence_diff")
    assert names(d["joins"]) == [("bob", "commenting", 1)] and names(d["leaves"]) == [("bob", "viewing", 1)]

    await bob.send(json.dumps({"type": "signal", "channel": channel, "event": "typing", "data": {"field": "c"}}))
    signal = await until(alice, "signal")
    assert signal["event"] == "typing" and signal["data"] == {"field": "c"} and "seq" not in signal
    # Off the loop: the sockets keep pinging meanwhile (a password check takes a while here).
    token = await asyncio.to_thread(server.token, "alice")
    status, body = await asyncio.to_thread(
        server.request, "GET", f"/api/realtime/channels/{channel}/presence/", None, token
    )
    assert status == 200 and body["count"] == 2
    status, hist = await asyncio.to_thread(
        server.request, "GET", f"/api/realtime/channels/{channel}/history/", None, token
    )
    assert status == 200 and all(m["type"] != "signal" for m in hist["messages"])

    anonymous = await websockets.connect(server.ws_url("anon"))
    await recv(anonymous)
    await anonymous.send(json.dumps({"type": "signal", "channel": channel, "event": "typing"}))
    assert (await recv(anonymous))["code"] == "forbidden"
    await anonymous.close()

    await bob.close()  # a close: the leave comes after the grace (1 s)
    d = await until(alice, "channel_presence_diff", timeout=5)
    assert d["joins"] == [] and names(d["leaves"]) == [("bob", "commenting", 1)]
    await alice.close()


async def test_two_tabs_are_one_member_and_a_reload_within_the_grace_is_no_leave(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, **FAST, "WEBSOCKET_PRESENCE_GRACE": "2"}).start()
    channel = new_issue(server)
    bob = await open_ws(server, "bob", "tab-b")
    await join(bob, channel)
    tab1 = await open_ws(server, "alice", "tab-1")
    await join(tab1, channel)
    assert names((await until(bob, "channel_presence_diff"))["joins"]) == [("alice", "viewing", 1)]
    tab2 = await open_ws(server, "alice", "tab-2")
    snapshot = await join(tab2, channel)
    assert names(snapshot["members"]) == [("alice", "viewing", 2), ("bob", "viewing", 1)]
    d = await until(bob, "channel_presence_diff")
    assert names(d["joins"]) == [("alice", "viewing", 2)] and names(d["leaves"]) == [("alice", "viewing", 1)]
    # tab-2 reloads: its socket closes and the same tab's new one joins within the grace.
    tab2.pinger.cancel()
    await tab2.close()
    tab2 = await open_ws(server, "alice", "tab-2")
    assert names((await join(tab2, channel))["members"]) == [("alice", "viewing", 2), ("bob", "viewing", 1)]
    with pytest.raises(TimeoutError):  # past the grace (2 s) and a poll: no leave, no join
        await until(bob, "channel_presence_diff", timeout=3)
    # The last tab of a user going is their leave; the one before it only lowers the count.
    await tab1.send(json.dumps({"type": "unsubscribe", "channel": channel}))
    d = await until(bob, "channel_presence_diff")
    assert names(d["joins"]) == [("alice", "viewing", 1)] and names(d["leaves"]) == [("alice", "viewing", 2)]
    await tab2.send(json.dumps({"type": "unsubscribe", "channel": channel}))
    d = await until(bob, "channel_presence_diff")
    assert d["joins"] == [] and names(d["leaves"]) == [("alice", "viewing", 1)]
    # A signal to a channel this socket no longer holds is forbidden.
    await tab2.send(json.dumps({"type": "signal", "channel": channel, "event": "typing"}))
    assert (await until(tab2, "error"))["code"] == "forbidden"
    for ws in (bob, tab1, tab2):
        ws.pinger.cancel()
        await ws.close()


async def test_members_cross_servers_without_redis_and_a_killed_server_s_leave_within_two_heartbeats(
    sqlite_env, server_factory
):
    env = {**sqlite_env, **FAST}
    a, b = start_all(server_factory(env), server_factory(env))
    channel = new_issue(a)
    bob = await open_ws(b, "bob", "tab-b")
    await join(bob, channel)
    alice = await open_ws(a, "alice", "tab-a")
    await join(alice, channel)
    d = await until(bob, "channel_presence_diff", timeout=2)  # B's poll of the rows
    assert names(d["joins"]) == [("alice", "viewing", 1)]
    await asyncio.sleep(HEARTBEAT)  # both servers have heartbeated since
    a.kill()
    killed = time.monotonic()
    d = await until(bob, "channel_presence_diff", timeout=2 * HEARTBEAT + 2)
    elapsed = time.monotonic() - killed
    assert names(d["leaves"]) == [("alice", "viewing", 1)] and d["joins"] == []
    assert elapsed <= 2 * HEARTBEAT, f"alice left {elapsed:.2f}s after the kill"
    token = await asyncio.to_thread(b.token, "bob")
    status, body = await asyncio.to_thread(b.request, "GET", f"/api/realtime/channels/{channel}/presence/", None, token)
    assert names(body["members"]) == [("bob", "viewing", 1)]
    await bob.close()


@pytest.fixture(scope="module")
def postgres_template(postgres_server):
    name = f"chpresence_template_{next(_db_names)}"
    prepare_database(server_env({"DATABASE_URL": postgres_server.create_database(name)}))
    return name


@pytest.fixture
def postgres_redis_env(postgres_server, postgres_template, redis_control):
    url = postgres_server.create_database(f"chpresence_{next(_db_names)}", template=postgres_template)
    # A slow poll: what arrives promptly came through Redis.
    return server_env({"DATABASE_URL": url, "REDIS_URL": redis_control.url, "REALTIME_POLL_INTERVAL": "30"})


@pytest.mark.services
async def test_with_redis_a_member_and_a_signal_on_server_a_reach_server_b(
    postgres_redis_env, redis_control, server_factory
):
    a, b = start_all(server_factory(postgres_redis_env), server_factory(postgres_redis_env))
    channel = new_issue(a)
    bob = await open_ws(b, "bob", "tab-b")
    alice = await open_ws(a, "alice", "tab-a")
    await wait_for_fanout_members(redis_control, 2)
    await join(bob, channel)
    await join(alice, channel)
    d = await until(bob, "channel_presence_diff", timeout=1.0)
    assert names(d["joins"]) == [("alice", "viewing", 1)]
    await alice.send(json.dumps({"type": "presence", "channel": channel, "activity": "typing a comment"}))
    d = await until(bob, "channel_presence_diff", timeout=1.0)
    assert names(d["joins"]) == [("alice", "typing a comment", 1)]
    assert (await until(alice, "channel_presence_diff"))["joins"] == d["joins"]  # her own change too
    await alice.send(json.dumps({"type": "signal", "channel": channel, "event": "typing", "data": {}}))
    signal = await until(bob, "signal", timeout=1.0)
    assert signal["user_id"] and signal["event"] == "typing"
    await bob.send(json.dumps({"type": "unsubscribe", "channel": channel}))
    d = await until(alice, "channel_presence_diff", timeout=1.0)
    assert names(d["leaves"]) == [("bob", "viewing", 1)]
    await alice.close()
    await bob.close()
