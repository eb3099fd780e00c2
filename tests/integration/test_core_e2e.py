"""The core paths against a real daphne process with the `websockets` client."""

import asyncio
import json

import pytest
import websockets

pytestmark = pytest.mark.integration


async def recv(ws, timeout=5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def test_connect_subscribe_and_receive_from_another_process(server):
    token = server.token("alice")
    async with websockets.connect(server.ws_url("tab-1", token)) as ws:
        hello = await recv(ws)
        assert hello["type"] == "connection" and hello["authenticated"] is True
        assert hello["user"]["username"] == "alice"
        await ws.send(json.dumps({"type": "subscribe", "channel": "global", "ref": "r1"}))
        assert await recv(ws) == {"type": "subscribed", "channel": "global", "seq": 0, "recovered": True, "ref": "r1"}
        server.shell(
            "from realtime.manager import WebSocketManager\n"
            "WebSocketManager().broadcast_sync(\n"
            "    {'type': 'announcement', 'message': 'System maintenance'}, channel='global')"
        )
        msg = await recv(ws, timeout=3)
        assert msg["type"] == "announcement" and msg["seq"] == 1 and msg["message"] == "System maintenance"
