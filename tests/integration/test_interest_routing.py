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
