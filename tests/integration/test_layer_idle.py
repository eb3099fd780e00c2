"""The hub's Redis listener through quiet periods (found by the chaos test).

channels_redis waits for layer messages with ``BZPOPMIN ... 5`` (its
``brpop_timeout``), and redis-py 8 reads every reply with a 5 s socket timeout
by default: on a quiet channel the read timed out just before Redis answered.
The hub took that for an outage every ~6 s, made a new layer channel and
joined the fan-out group with it, so the group kept growing with dead members
(each publication written to all of them) and a publication sent in the
second the hub was away reached its sockets only through the poller.
"""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest
import websockets

from .conftest import server_env
from .test_scale_out import FANOUT_GROUP_KEY, PROMPT, broadcast, recv, subscribe, wait_for_fanout_members

pytestmark = [pytest.mark.integration, pytest.mark.services]

BRPOP_TIMEOUT = 5.0  # channels_redis RedisChannelLayer.brpop_timeout


def group_members(redis) -> int:
    reply = redis.command("ZCARD", FANOUT_GROUP_KEY)
    assert reply.startswith(":"), reply
    return int(reply[1:])


async def test_an_idle_server_keeps_one_fanout_membership_and_delivers_at_once(
    template_db, tmp_path, redis_control, server_factory
):
    db = tmp_path / "db.sqlite3"
    shutil.copy(template_db, db)
    # The poller would deliver after 30 s: anything faster came through Redis.
    env = server_env(
        {"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_control.url, "REALTIME_POLL_INTERVAL": "30"}
    )
    server = server_factory(env).start()
    admin = server.token("admin")
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        await recv(ws)
        await subscribe(ws, "global")
        await wait_for_fanout_members(redis_control, 1)
        # Quiet for two and a half listening periods: one listener, one membership, throughout.
        deadline = time.monotonic() + 2.5 * BRPOP_TIMEOUT
        while time.monotonic() < deadline:
            assert group_members(redis_control) == 1
            await ws.send('{"type":"ping"}')  # keeps the socket heard from, nothing else
            assert (await recv(ws))["type"] == "pong"
            await asyncio.sleep(0.5)
        for text in ("after a quiet spell", "and the next"):
            started = time.monotonic()
            sent = await broadcast(server, admin, text)
            assert await recv(ws, timeout=PROMPT) == sent
            assert time.monotonic() - started < PROMPT
    assert group_members(redis_control) == 1
