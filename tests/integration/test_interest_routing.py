"""Routing by interest with Redis (realtime/interest.py): a server process gets the
layer messages of a channel only while it has local subscribers of it.

Two servers on one database and one Redis, the poller off (anything delivered
came through the layer or the read that follows a join). Each server's
``layer_publications`` (its stats) counts the ``rt.publish`` messages its layer brought.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import websockets

from .test_doorbell import shell_publish
from .test_scale_out import recv, start_all, subscribe, wait_for_fanout_members

pytestmark = [pytest.mark.integration, pytest.mark.services]


def layer_publications(server, token: str) -> int:
    status, body = server.request("GET", "/api/realtime/stats/", token=token)
    assert status == 200, body
    return body["this_process"]["layer_publications"]


async def wait_for_group(redis, channel_group: str, members: int, timeout: float = 10.0) -> None:
    key = f"asgi:group:{channel_group}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = redis.command("ZCARD", key)
        if reply.startswith(":") and int(reply[1:]) == members:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} did not reach {members} members: {redis.command('ZCARD', key)}")


async def test_a_channel_subscribed_only_on_a_never_reaches_b(sqlite_env, redis_control, server_factory):
    env = {**sqlite_env, "REDIS_URL": redis_control.url, "REALTIME_POLL_INTERVAL": "3600"}
    a, b = start_all(server_factory(env), server_factory(env))
    admin = a.token("admin")
    async with websockets.connect(a.ws_url("tab-a")) as on_a, websockets.connect(b.ws_url("tab-b")) as on_b:
        await recv(on_a)
        await recv(on_b)  # B's hub runs, in rt.fanout, but nobody there follows `global`
        await subscribe(on_a, "global")
        await wait_for_fanout_members(redis_control, 2)
        await wait_for_group(redis_control, "rt.global", 1)

        for text in ("one", "two"):
            sent = await shell_publish(env, text)
            assert await recv(on_a) == sent
        assert layer_publications(a, admin) == 2
        assert layer_publications(b, admin) == 0  # never reached B's layer
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(on_b.recv(), 0.3)

        # B gains a subscriber: it joins the group and gets the next one through the layer.
        await subscribe(on_b, "global")
        await wait_for_group(redis_control, "rt.global", 2)
        sent = await shell_publish(env, "three")
        assert await recv(on_a) == sent and await recv(on_b) == sent
        assert layer_publications(b, admin) == 1

        # And leaves the group when its last subscriber goes.
        await on_b.send(json.dumps({"type": "unsubscribe", "channel": "global"}))
        assert (await recv(on_b))["type"] == "unsubscribed"
        await wait_for_group(redis_control, "rt.global", 1)
        sent = await shell_publish(env, "four")
        assert await recv(on_a) == sent
        assert layer_publications(b, admin) == 1


async def test_a_publication_between_subscribe_and_join_is_read_from_the_store(
    sqlite_env, redis_control, server_factory
):
    """The join's read covers what the group missed: subscribe, publish at once, nothing lost."""
    env = {**sqlite_env, "REDIS_URL": redis_control.url, "REALTIME_POLL_INTERVAL": "3600"}
    a = server_factory(env).start()
    admin = a.token("admin")
    async with websockets.connect(a.ws_url("tab-a")) as ws:
        await recv(ws)
        await wait_for_fanout_members(redis_control, 1)
        await subscribe(ws, "global")
        status, sent = await asyncio.to_thread(
            a.request,
            "POST",
            "/api/realtime/broadcast/",
            {"channel": "global", "message": {"type": "announcement", "message": "early"}},
            admin,
        )
        assert status == 202
        assert await recv(ws) == sent


def connections_received(redis) -> int:
    """Redis's total_connections_received (INFO is a bulk reply: read all of it)."""
    import socket

    with socket.create_connection(("127.0.0.1", redis.port), timeout=2) as s:
        s.sendall(b"INFO stats\r\n")
        data = b""
        while b"total_connections_received:" not in data or not data.endswith(b"\r\n"):
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    return int(data.split(b"total_connections_received:")[1].split(b"\r\n")[0])


PUBLISH_MANY = """
from realtime.publisher import publish
for i in range(20):
    publish("global", {"type": "announcement", "message": str(i)})
"""


async def test_a_worker_publishing_many_times_keeps_one_redis_connection(sqlite_env, redis_control):
    """A shell's or a worker's publications share one connection (each one used to open its own)."""
    from .conftest import manage

    env = {**sqlite_env, "REDIS_URL": redis_control.url}
    before = connections_received(redis_control)
    await asyncio.to_thread(manage, env, "shell", "-c", PUBLISH_MANY)
    # +1: the INFO above; the shell's sends: one pool, a connection or two.
    assert connections_received(redis_control) - before <= 4
