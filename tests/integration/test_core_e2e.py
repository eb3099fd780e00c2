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


PUBLISH_TWO = (
    "from realtime.publisher import publish\n"
    "for text in ('while down 1', 'while down 2'):\n"
    "    publish('issues', {'type': 'announcement', 'message': text})"
)


async def test_resume_with_since_across_a_server_restart(server):
    token = server.token("alice")
    async with websockets.connect(server.ws_url("tab-1", token)) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "channel": "issues"}))
        assert (await recv(ws))["type"] == "subscribed"
        server.shell(
            "from realtime.publisher import publish\npublish('issues', {'type': 'announcement', 'message': 'one'})"
        )
        first = await recv(ws)
        assert first["seq"] == 1
        server.stop()  # SIGTERM: the server closes its sockets with 4503 first
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
    server.shell(PUBLISH_TWO)
    server.start()
    async with websockets.connect(server.ws_url("tab-1", token)) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "channel": "issues", "since": first["seq"]}))
        subscribed = await recv(ws)
        assert subscribed["seq"] == 3 and subscribed["recovered"] is True
        missed = [await recv(ws), await recv(ws)]
        assert [m["seq"] for m in missed] == [2, 3]
        assert [m["message"] for m in missed] == ["while down 1", "while down 2"]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)


async def test_bad_frames_never_break_the_server_for_others(server):
    async with websockets.connect(server.ws_url("good")) as good, websockets.connect(server.ws_url("bad")) as bad:
        await recv(good)
        await recv(bad)
        for frame in ["", "{", b"\x00\x01", "[]", json.dumps({"type": "subscribe", "channel": "ü" * 50})]:
            await bad.send(frame)
            assert (await recv(bad))["type"] == "error"
        await good.send(json.dumps({"type": "ping", "ref": "still-here"}))
        assert (await recv(good))["ref"] == "still-here"


async def test_oversize_frame_is_closed_with_4413_not_dropped(server):
    async with websockets.connect(server.ws_url("big"), max_size=None) as ws:
        await recv(ws)
        await ws.send("x" * 70000)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4413


async def test_refused_handshakes_are_http_403(server):
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url("bad%21id"))
    assert refused.value.response.status_code == 403
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url("tab-1"), origin="http://evil.test")
    assert refused.value.response.status_code == 403
    # A path outside /ws/<client_id>/ is refused the same way.
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/other/socket/")
    assert refused.value.response.status_code == 403


async def broadcast_over_http(server, token: str, text: str) -> None:
    status, body = await asyncio.to_thread(
        server.request,
        "POST",
        "/api/realtime/broadcast/",
        {"channel": "global", "message": {"type": "announcement", "message": text}},
        token,
    )
    assert status == 202, body


async def test_permessage_deflate_is_declined_by_default(server):
    # The websockets client offers permessage-deflate on every connection.
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        assert (await recv(ws))["type"] == "connection"


async def test_permessage_deflate_when_compression_is_on(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "WEBSOCKET_COMPRESSION": "1"}).start()
    admin = server.token("admin")
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
        assert (await recv(ws))["type"] == "connection"
        await ws.send(json.dumps({"type": "subscribe", "channel": "global"}))
        assert (await recv(ws))["type"] == "subscribed"
        # Compressed publications arrive whole, in order, through the ASGI path.
        for i in range(3):
            await broadcast_over_http(server, admin, "x" * 200 + str(i))
        got = [await recv(ws) for _ in range(3)]
        assert [m["seq"] for m in got] == [1, 2, 3]
        assert got[2]["message"] == "x" * 200 + "2"


@pytest.mark.parametrize("freeze", ["1", "0"])
async def test_server_freezes_its_startup_heap_once_serving(sqlite_env, server_factory, freeze):
    server = server_factory({**sqlite_env, "REALTIME_GC_FREEZE": freeze}).start()
    admin = server.token("admin")
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        assert (await recv(ws))["type"] == "connection"
        status, stats = await asyncio.to_thread(server.request, "GET", "/api/realtime/stats/", None, admin)
    assert status == 200
    frozen = stats["this_process"]["gc_frozen_objects"]
    # Django and every module are out of the collector's sight, or nothing is.
    assert frozen > 50_000 if freeze == "1" else frozen == 0
