"""An unresponsive Redis never stalls a server's handshakes (found by the chaos test).

A signed-in connection publishes its user's presence; that publication's
fan-out to the other processes used to wait for Redis on the consumers' one
database thread, so with Redis hung (SIGSTOP: no refusal, just silence) each
such handshake took the 15 s read timeout and the ones behind it queued
(seen: 15 s, then 30 s). The hub's loop sends it now, without waiting.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time

import pytest
import websockets

from .conftest import server_env

pytestmark = [pytest.mark.integration, pytest.mark.services]


async def test_signed_in_handshakes_stay_fast_while_redis_hangs(template_db, tmp_path, redis_control, server_factory):
    db = tmp_path / "db.sqlite3"
    shutil.copy(template_db, db)
    env = server_env({"DATABASE_URL": f"sqlite:///{db}", "REDIS_URL": redis_control.url})
    server = server_factory(env).start()
    tokens = {user: server.token(user) for user in ("alice", "bob")}

    async def handshake(user: str, client_id: str) -> float:
        started = time.monotonic()
        async with websockets.connect(server.ws_url(client_id, tokens[user]), open_timeout=40) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 40))["type"] == "connection"
        return time.monotonic() - started

    await handshake("alice", "warm-up")
    os.kill(redis_control.proc.pid, signal.SIGSTOP)
    try:
        took = await asyncio.gather(handshake("alice", "tab-1"), handshake("bob", "tab-1"))
    finally:
        os.kill(redis_control.proc.pid, signal.SIGCONT)
    assert max(took) < 5, took
