"""Presence across real daphne processes: SIGTERM closes with 4503 and clears rows, SIGKILL is pruned.

docs/protocol.md section 6: "A server that dies without closing its sockets leaves no
one online for long: its connections are pruned and its users go offline within
2 x the heartbeat interval." Every server here heartbeats every 2 s.
"""

import asyncio
import contextlib
import json
import signal
import time

import pytest
import websockets

pytestmark = pytest.mark.integration

HEARTBEAT = 2.0
FAST = {"WEBSOCKET_HEARTBEAT_INTERVAL": str(HEARTBEAT)}


async def recv(ws, timeout=5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def connect(server, username: str, client_id: str = "tab-1"):
    """A signed-in connection that pings every half interval, as the JS client does
    (silence for 2 x the interval would close it with 4408)."""
    token = await asyncio.to_thread(server.token, username)
    ws = await websockets.connect(server.ws_url(client_id, token))
    hello = await recv(ws)
    assert hello["type"] == "connection" and hello["user"]["username"] == username
    ws.user_id, ws.connection_id = hello["user"]["id"], hello["connection_id"]

    async def ping():
        while True:
            await asyncio.sleep(HEARTBEAT / 2)
            await ws.send(json.dumps({"type": "ping"}))

    ws.pinger = asyncio.ensure_future(ping())
    return ws


async def close(ws) -> None:
    ws.pinger.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await ws.pinger
    with contextlib.suppress(Exception):
        await ws.close()


async def watch_presence(server, username: str):
    """A connection subscribed to ``presence``; returns it and the ``presence_state``."""
    ws = await connect(server, username, "watcher")
    await ws.send(json.dumps({"type": "subscribe", "channel": "presence"}))
    while (msg := await recv(ws))["type"] != "subscribed":
        assert msg["type"] == "pong"
    state = await recv(ws)
    assert state["type"] == "presence_state"
    return ws, state


async def next_presence_of(ws, user_id: str, timeout: float) -> dict:
    """The next ``presence_update`` about ``user_id``, skipping pongs and other users."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if msg["type"] == "presence_update" and msg["user_id"] == user_id:
            return msg


async def close_code(ws, timeout: float) -> int | None:
    """Read (pongs) until the server closes, within ``timeout`` overall; the code it sent."""

    async def drain():
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None

    return await asyncio.wait_for(drain(), timeout)


async def presence_api(server, username: str) -> dict:
    status, body = await asyncio.to_thread(
        server.request, "GET", "/api/realtime/presence/", None, await asyncio.to_thread(server.token, username)
    )
    assert status == 200, body
    return {row["username"]: row for row in body}


def two_servers(sqlite_env, server_factory, **extra):
    env = {**sqlite_env, **FAST, **extra}
    a = server_factory(env).start()
    b = server_factory(env).start()
    return a, b


# --- SIGTERM -------------------------------------------------------------------------


async def test_sigterm_closes_with_4503_and_clears_rows_and_a_reconnect_never_shows_offline(sqlite_env, server_factory):
    a, b = two_servers(sqlite_env, server_factory, WEBSOCKET_PRESENCE_GRACE="5")
    bob, _state = await watch_presence(b, "bob")
    alice = await connect(a, "alice")
    alice_id = alice.user_id
    assert (await next_presence_of(bob, alice_id, 5))["status"] == "online"  # via the store, across processes
    users = await presence_api(b, "bob")
    assert users["alice"]["status"] == "online" and users["alice"]["connection_count"] == 1

    a.proc.send_signal(signal.SIGTERM)
    assert await close_code(alice, timeout=5) == 4503  # a close frame, not 1006
    assert await asyncio.to_thread(a.proc.wait, 15) == 0

    # Rows cleared by A itself before it exited, not pruned later by B:
    log = a.log_path.read_text()
    assert "SIGTERM: closing 1 connections with 4503" in log
    assert "dropped 1 connections of 1 stopped or dead server(s)" in log
    users = await presence_api(b, "bob")
    assert users["alice"]["connection_count"] == 0
    assert users["alice"]["status"] == "online"  # the grace period of any close
    # The client reconnects at once (4503), to the other server: never offline.
    await close(alice)
    alice = await connect(b, "alice")
    with pytest.raises(asyncio.TimeoutError):
        await next_presence_of(bob, alice_id, timeout=6)  # past the grace: nothing about alice
    users = await presence_api(b, "bob")
    assert users["alice"]["status"] == "online" and users["alice"]["connection_count"] == 1
    out = await asyncio.to_thread(
        b.shell,
        "from realtime.models import ServerInstance\n"
        f"s = ServerInstance.objects.get(pid={a.proc.pid})\n"
        "print(s.stopped_at is not None, s.connections.count())",
    )
    assert out.strip().splitlines()[-1] == "True 0"
    await close(alice)
    await close(bob)


async def test_sigterm_alone_then_prune_command_sets_offline_after_the_grace(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, **FAST, "WEBSOCKET_PRESENCE_GRACE": "1"}).start()
    alice = await connect(server, "alice")
    server.proc.send_signal(signal.SIGTERM)
    assert await close_code(alice, timeout=5) == 4503
    await close(alice)
    assert await asyncio.to_thread(server.proc.wait, 15) == 0
    await asyncio.sleep(1.2)  # the grace period
    out = (await asyncio.to_thread(server.manage, "realtime_prune")).stdout
    # Nothing for the prune to find but the grace period that the stopped server left.
    assert "servers pruned: 0" in out and "connections pruned: 0" in out and "users set offline: 1" in out, out
    out = await asyncio.to_thread(
        server.shell,
        "from realtime.models import Presence\n"
        "p = Presence.objects.get(user__username='alice')\n"
        "print(p.status, p.last_seen is not None)",
    )
    assert out.strip().splitlines()[-1] == "offline True"


# --- SIGKILL -------------------------------------------------------------------------


async def test_sigkill_users_go_offline_within_two_heartbeats_and_others_stay_online(sqlite_env, server_factory):
    a, b = two_servers(sqlite_env, server_factory, WEBSOCKET_PRESENCE_GRACE="1")
    bob, _state = await watch_presence(b, "bob")
    alice = await connect(a, "alice")
    alice_id = alice.user_id
    assert (await next_presence_of(bob, alice_id, 5))["status"] == "online"
    users = await presence_api(b, "bob")
    assert users["alice"]["status"] == "online" and users["bob"]["status"] == "online"
    await asyncio.sleep(HEARTBEAT)  # both servers have heartbeated since

    a.kill()
    killed_at = time.monotonic()
    # B's own heartbeat prunes A, with no one asking: bob is told.
    update = await next_presence_of(bob, alice_id, timeout=2 * HEARTBEAT + 2)
    elapsed = time.monotonic() - killed_at
    assert update["status"] == "offline" and update["last_seen"] is not None
    assert elapsed <= 2 * HEARTBEAT, f"alice went offline {elapsed:.2f}s after the kill"
    users = await presence_api(b, "bob")
    assert users["alice"]["status"] == "offline" and users["alice"]["connection_count"] == 0
    assert users["alice"]["last_seen"] is not None
    assert users["bob"]["status"] == "online" and users["bob"]["connection_count"] == 1
    # And bob stays online: B never takes itself for dead.
    await asyncio.sleep(2 * HEARTBEAT)
    users = await presence_api(b, "bob")
    assert users["bob"]["status"] == "online" and users["bob"]["connection_count"] == 1
    await close(alice)
    await close(bob)


async def test_restarted_server_prunes_its_killed_predecessor(sqlite_env, server_factory):
    env = {**sqlite_env, **FAST, "WEBSOCKET_PRESENCE_GRACE": "1"}
    first = server_factory(env).start()
    alice = await connect(first, "alice")
    await asyncio.sleep(0.5)
    first.kill()
    killed_pid = first.proc.pid
    await close(alice)
    # The same server again, on the same port; nothing else runs and no one asks the API.
    second = await asyncio.to_thread(server_factory(env, port=first.port).start)
    bob, state = await watch_presence(second, "bob")
    others = [u["user_id"] for u in state["users"] if u["user_id"] != bob.user_id]
    if others:  # the predecessor was not stale yet when this one started: its heartbeat prunes it
        update = await next_presence_of(bob, others[0], timeout=2 * HEARTBEAT + 2)
        assert update["status"] == "offline"
    out = await asyncio.to_thread(
        second.shell,
        "from realtime.models import Presence, ServerInstance\n"
        f"old = ServerInstance.objects.get(pid={killed_pid})\n"
        "print(old.stopped_at is not None, old.connections.count(),"
        " Presence.objects.get(user__username='alice').status)",
    )
    assert out.strip().splitlines()[-1] == "True 0 offline"
    await close(bob)


# --- the admin's disconnect, from another process ----------------------------------------


async def test_disconnect_from_another_process_closes_with_4403_on_the_next_heartbeat(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, **FAST}).start()
    alice = await connect(server, "alice")
    # What the admin action does in a process that holds no sockets (a shell here).
    out = await asyncio.to_thread(
        server.shell,
        f"from realtime import connections\nprint(connections.disconnect_connections([{alice.connection_id!r}]))",
    )
    assert out.strip().splitlines()[-1] == "1"
    assert await close_code(alice, timeout=HEARTBEAT) == 4403  # the server's next tick: a quarter interval
    await close(alice)
