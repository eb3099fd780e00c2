"""Channel presence and signals on an SSE stream (docs/protocol.md sections 10, 11 and 13), on a real server.

The stream receives what a socket would (the snapshot, the diffs, the others'
signals); what only a socket can send goes over HTTP, naming the stream by its
``connection_id``: ``POST /api/realtime/channels/<channel>/activity/`` and
``.../signal/``.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from .sse import open_stream, refused

pytestmark = pytest.mark.integration


def names(entries) -> list[tuple]:
    return [(e["username"], e["activity"], e["connections"]) for e in entries]


async def until(ws, kind: str, timeout: float = 5.0) -> dict:
    async def read():
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg

    return await asyncio.wait_for(read(), timeout)


async def post(server, path: str, body, token: str | None) -> tuple[int, object]:
    return await asyncio.to_thread(server.request, "POST", path, body, token)


@pytest.fixture
def live(sqlite_env, server_factory):
    return server_factory({**sqlite_env, "WEBSOCKET_PRESENCE_GRACE": "1", "WEBSOCKET_MESSAGE_RATE": "5"}).start()


async def test_a_stream_joins_presence_gets_diffs_and_signals_and_sends_over_http(live):
    alice, bob_token = live.token("alice"), live.token("bob")
    status, body = live.request("POST", "/api/issues/", {"title": "TypeError in checkout"}, alice)
    assert status == 201
    channel = f"issue:{body['id']}"
    bob = await websockets.connect(live.ws_url("tab-b", bob_token))
    await until(bob, "connection")
    await bob.send(json.dumps({"type": "subscribe", "channel": channel, "presence": True}))
    await until(bob, "channel_presence")

    async with open_stream(live, channel, alice, presence=channel) as stream:
        hello = await stream.next_of("connection")
        connection_id = hello.data["connection_id"]
        snapshot = await stream.next_of("channel_presence")
        assert names(snapshot.data["members"]) == [("alice", "viewing", 1), ("bob", "viewing", 1)]
        assert snapshot.id == f"{channel}=1"  # no position of its own: the stream's, unchanged
        assert names((await until(bob, "channel_presence_diff"))["joins"]) == [("alice", "viewing", 1)]

        # bob's signal reaches the stream.
        await bob.send(json.dumps({"type": "signal", "channel": channel, "event": "typing", "data": {"f": 1}}))
        signal = await stream.next_of("signal")
        assert signal.data["event"] == "typing" and signal.data["data"] == {"f": 1}

        # The stream's activity over HTTP: a diff for bob and for the stream itself.
        activity = f"/api/realtime/channels/{channel}/activity/"
        status, ack = await post(live, activity, {"connection_id": connection_id, "activity": "commenting"}, alice)
        assert status == 200 and ack == {"type": "presence_ack", "channel": channel, "activity": "commenting"}
        d = await until(bob, "channel_presence_diff")
        assert names(d["joins"]) == [("alice", "commenting", 1)]
        assert (await stream.next_of("channel_presence_diff")).data["joins"] == d["joins"]

        # A signal over HTTP reaches bob, and not the stream that sent it.
        signal_url = f"/api/realtime/channels/{channel}/signal/"
        status, _ = await post(live, signal_url, {"connection_id": connection_id, "event": "typing"}, alice)
        assert status == 202
        msg = await until(bob, "signal")
        assert msg["event"] == "typing" and msg["data"] == {} and msg["user_id"] == hello.data["user"]["id"]

        # Refused: another user's stream, a channel the stream does not hold, anonymous, a bad frame.
        assert (await post(live, signal_url, {"connection_id": connection_id, "event": "typing"}, bob_token))[0] == 403
        other = "/api/realtime/channels/issues/signal/"
        assert (await post(live, other, {"connection_id": connection_id, "event": "typing"}, alice))[0] == 403
        assert (await post(live, signal_url, {"connection_id": connection_id, "event": "typing"}, None))[0] == 401
        status, err = await post(live, signal_url, {"connection_id": connection_id, "event": "Typing!"}, alice)
        assert status == 400 and err["code"] == "invalid_message"
        status, err = await post(live, activity, {"connection_id": "nope", "activity": "x"}, alice)
        assert status == 400 and err["code"] == "invalid_message"
        # The stream's message rate, as a socket's (WEBSOCKET_MESSAGE_RATE 5 here, bursts of 10).
        burst = [post(live, signal_url, {"connection_id": connection_id, "event": "t"}, alice) for _ in range(40)]
        codes = [code for code, _ in await asyncio.gather(*burst)]
        assert set(codes) == {202, 429} and codes.count(202) >= 5, codes

    # The stream ended: alice leaves after the grace.
    d = await until(bob, "channel_presence_diff", timeout=6)
    assert d["joins"] == [] and names(d["leaves"]) == [("alice", "commenting", 1)]
    await bob.close()


async def test_presence_on_a_stream_is_checked_like_a_subscribe(live):
    alice = live.token("alice")
    status, body = live.request("POST", "/api/issues/", {"title": "x"}, alice)
    channel = f"issue:{body['id']}"
    status, err = await refused(live, channel, None, presence=channel)
    assert status == 403 and err["code"] == "forbidden"  # anonymous
    status, err = await refused(live, "issues", alice, presence="issues")
    assert status == 400 and err["code"] == "invalid_message"  # a kind without channel presence
    status, err = await refused(live, "issues", alice, presence=channel)
    assert status == 400 and err["code"] == "invalid_message"  # not one of the stream's channels
