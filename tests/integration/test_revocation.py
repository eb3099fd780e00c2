"""Revocation (docs/protocol.md section 5): a user deactivated or deleted, or whose tokens are
blacklisted, loses every live socket (4403) within 10 seconds on every server process,
and their old access tokens open no new one (4401) and no API request (401).

- Without Redis (two processes on one SQLite file): each server's hub checks its
  sockets' users and token sessions every REALTIME_REVOCATION_INTERVAL (5 s).
  The deactivation here is a ``QuerySet.update()`` from another process, which
  sends no signal: only that check can see it.
- With Redis: the revoking process tells every server at once (``rt.revoke`` on
  the layer); the check is set to a minute so that only the layer can be in time.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from .conftest import USER_PASSWORD
from .test_scale_out import recv, start_all, subscribe, wait_for_fanout_members

pytestmark = pytest.mark.integration

BOUND = 10.0  # seconds, docs/protocol.md section 5
USERS = "from django.contrib.auth.models import User"


def login(server, username: str) -> dict:
    status, body = server.request("POST", "/api/auth/token/", {"username": username, "password": USER_PASSWORD})
    assert status == 200, body
    return body


async def open_socket(server, access: str, client_id: str):
    ws = await websockets.connect(server.ws_url(client_id, access))
    hello = await recv(ws)
    assert hello["authenticated"] is True, hello
    ws.user_id = hello["user"]["id"]
    return ws


async def closed_with(ws, timeout: float = BOUND) -> tuple[int, float]:
    """The close code the server sent, and how long it took; a delivery meanwhile fails the test."""
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
            assert frame["type"] in ("pong", "presence_update"), f"received after revocation: {frame}"
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, time.monotonic() - started


async def refused_on_connect(server, access: str) -> int:
    async with websockets.connect(server.ws_url("late-tab", access)) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), BOUND)
        return closed.value.rcvd.code


async def still_open(ws) -> None:
    await ws.send(json.dumps({"type": "ping", "ref": "alive"}))
    while (reply := await recv(ws))["type"] != "pong":
        pass
    assert reply["ref"] == "alive"


async def test_deactivation_without_a_signal_closes_sockets_on_every_server(sqlite_env, server_factory):
    assert "REDIS_URL" not in sqlite_env
    a, b = start_all(server_factory(sqlite_env), server_factory(sqlite_env))
    alice = login(a, "alice")["access"]
    bob = login(a, "bob")["access"]
    on_a = await open_socket(a, alice, "tab-a")
    on_b = await open_socket(b, alice, "tab-b")
    bobs = await open_socket(b, bob, "bob-tab")
    await subscribe(on_b, f"user:{on_b.user_id}")

    # Another process, no signal: QuerySet.update() bypasses post_save.
    a.shell(
        "from django.contrib.auth.models import User; User.objects.filter(username='alice').update(is_active=False)"
    )
    results = await asyncio.gather(closed_with(on_a), closed_with(on_b))
    assert [code for code, _ in results] == [4403, 4403]
    await still_open(bobs)  # everyone else is served as before
    assert await refused_on_connect(b, alice) == 4401
    assert a.request("GET", "/api/issues/", token=alice)[0] == 401
    await bobs.close()


async def test_deleting_a_user_closes_their_sockets(sqlite_env, server_factory):
    a, b = start_all(server_factory(sqlite_env), server_factory(sqlite_env))
    bob = login(a, "bob")["access"]
    on_b = await open_socket(b, bob, "tab-b")
    a.shell(f"{USERS}; User.objects.get(username='bob').delete()")
    code, _ = await closed_with(on_b)
    assert code == 4403
    assert await refused_on_connect(a, bob) == 4401


@pytest.mark.services
async def test_logout_closes_that_sessions_sockets_at_once_through_redis(sqlite_env, redis_control, server_factory):
    # The periodic check waits a minute: only the layer path can be in time.
    env = {**sqlite_env, "REDIS_URL": redis_control.url, "REALTIME_REVOCATION_INTERVAL": "60"}
    a, b = start_all(server_factory(env), server_factory(env))
    session = login(a, "alice")
    other_session = login(a, "alice")  # another device of the same user
    on_b = await open_socket(b, session["access"], "phone")
    on_a = await open_socket(a, session["access"], "laptop")
    other = await open_socket(b, other_session["access"], "tablet")
    await wait_for_fanout_members(redis_control, 2)

    status, body = a.request("POST", "/api/auth/logout/", {"refresh": session["refresh"]})
    assert status == 200, body
    results = await asyncio.gather(closed_with(on_a), closed_with(on_b))
    assert [code for code, _ in results] == [4403, 4403]
    assert max(elapsed for _, elapsed in results) < 3.0  # at once, not at the next check
    await still_open(other)  # the other session is not logged out

    # The session's tokens are dead everywhere: refresh, new sockets, the API.
    assert a.request("POST", "/api/auth/token/refresh/", {"refresh": session["refresh"]})[0] == 401
    assert await refused_on_connect(b, session["access"]) == 4401
    assert b.request("GET", "/api/issues/", token=session["access"])[0] == 401
    assert b.request("GET", "/api/issues/", token=other_session["access"])[0] == 200

    # Deactivation through the admin's way (a save: the signal) reaches the other server at once too.
    a.shell(f"{USERS}; u = User.objects.get(username='alice'); u.is_active = False; u.save()")
    code, elapsed = await closed_with(other)
    assert code == 4403 and elapsed < 3.0
