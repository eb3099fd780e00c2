"""A connection's resources are released however it ends, against a real daphne process.

Each case ends a connection in a way that used to kill the consumer (so
``disconnect()`` never ran): afterwards the server holds no hub entry, no
``Connection`` row and no "online" for it, and keeps serving everyone else.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time

import pytest
import websockets

pytestmark = pytest.mark.integration

FAST = {"WEBSOCKET_PRESENCE_GRACE": "0.3", "WEBSOCKET_HEARTBEAT_INTERVAL": "2"}


async def recv(ws, timeout=5.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def leftovers(server, staff: str) -> tuple[int, int, list[str]]:
    """(Connection rows, hub connections, users not offline) as the server reports them."""
    status, stats = await asyncio.to_thread(server.request, "GET", "/api/realtime/stats/", None, staff)
    assert status == 200, stats
    status, people = await asyncio.to_thread(server.request, "GET", "/api/realtime/presence/", None, staff)
    assert status == 200, people
    online = sorted(p["username"] for p in people if p.get("status") != "offline")
    return stats["connections"], stats["this_process"].get("connections", 0), online


async def stats(server, staff: str) -> dict:
    """The stats API (a read: it answers while another process holds the write lock)."""
    status, body = await asyncio.to_thread(server.request, "GET", "/api/realtime/stats/", None, staff)
    assert status == 200, body
    return body


async def assert_nothing_left(server, staff: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = await leftovers(server, staff)
        if left == (0, 0, []):
            return
        assert time.monotonic() < deadline, f"left behind (rows, hub entries, online): {left}"
        await asyncio.sleep(0.1)


@pytest.fixture
def fast_server(sqlite_env, server_factory):
    return server_factory({**sqlite_env, **FAST}).start()


# Frames holding a lone surrogate escape in each field the issue names. Sent as
# text: the escape is plain ASCII on the wire, json.loads turns it into U+D800.
SURROGATE_FRAMES = [
    r'{"type":"ping","timestamp":"\ud800"}',
    r'{"type":"ping","ref":"\ud800"}',
    r'{"type":"subscribe","channel":"issue:\ud800"}',
    r'{"type":"auth","token":"\ud800"}',
    r'{"type":"presence","status":"away","activity":"\udfff x"}',
    r'{"type":"ping","\ud800":1}',
]


async def test_lone_surrogates_are_invalid_json_and_leave_nothing_behind(fast_server):
    server = fast_server
    staff = await asyncio.to_thread(server.token, "admin")
    alice = await asyncio.to_thread(server.token, "alice")
    for frame in SURROGATE_FRAMES:
        async with websockets.connect(server.ws_url("tab-1", alice)) as ws:
            await recv(ws)
            await ws.send(frame)
            reply = await recv(ws)
            assert reply["type"] == "error" and reply["code"] == "invalid_json", (frame, reply)
            await ws.send(json.dumps({"type": "ping", "ref": "still-open"}))
            assert (await recv(ws))["ref"] == "still-open"
    await assert_nothing_left(server, staff)


def handshake(port: int, path: str) -> socket.socket:
    """A raw client socket past the WebSocket upgrade, the ``connection`` frame read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 101"), data[:200]
    rest = data.split(b"\r\n\r\n", 1)[1]
    while len(rest) < 2 or len(rest) < 2 + (rest[1] & 0x7F):
        rest += sock.recv(4096)
    assert b'"type":"connection"' in rest
    return sock


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked


def read_to_eof(sock: socket.socket) -> None:
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass
    sock.close()


async def test_client_closing_while_its_reply_is_written_leaves_nothing_behind(fast_server):
    """A ping and a close frame in one packet: autobahn takes the close before the
    consumer writes the pong, so the pong's send raises ``Disconnected``."""
    server = fast_server
    staff = await asyncio.to_thread(server.token, "admin")
    alice = await asyncio.to_thread(server.token, "alice")
    for i in range(5):
        sock = await asyncio.to_thread(handshake, server.port, f"/ws/tab-{i}/?token={alice}")
        ping = client_frame(0x1, json.dumps({"type": "ping", "ref": "r"}).encode())
        close = client_frame(0x8, struct.pack("!H", 1000))
        sock.sendall(ping + close)
        await asyncio.to_thread(read_to_eof, sock)
    await assert_nothing_left(server, staff)
    async with websockets.connect(server.ws_url("after")) as ws:
        assert (await recv(ws))["type"] == "connection"


async def test_hub_releases_a_gone_socket_whose_consumer_is_stuck(fast_server, tmp_path):
    """The second line of defence: the consumer waits on a locked database (busy
    timeout 20 s) when its client vanishes; the hub notices the socket is gone and
    releases it within 2 x the heartbeat interval (2 s here) all the same."""
    import sqlite3

    server = fast_server
    staff = await asyncio.to_thread(server.token, "admin")
    alice = await asyncio.to_thread(server.token, "alice")
    ws = await websockets.connect(server.ws_url("tab-1", alice))
    await recv(ws)
    assert (await stats(server, staff))["this_process"]["connections"] == 1
    locker = sqlite3.connect(server.env["DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        await ws.send(json.dumps({"type": "presence", "status": "away"}))
        await asyncio.sleep(0.2)  # the frame reaches the consumer, which now waits on the lock
        ws.transport.abort()  # a reset, no close frame
        started = time.monotonic()
        # While the lock is held the HTTP API waits too, so the server's log is the witness.
        while "socket gone but never released; releasing it" not in server.log_path.read_text():
            assert time.monotonic() - started < 2 * 2, "the hub did not release the gone socket"
            await asyncio.sleep(0.1)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await assert_nothing_left(server, staff)


async def test_a_connection_the_hub_released_is_counted_once_among_the_closes(sqlite_env, server_factory):
    """The reaper's release is a close like any other: counted in /metrics and in
    the ops console's recent closes when the hub releases it (1006: the socket
    went without a close frame; reason "socket gone"), and not again when the
    consumer, unstuck, sees its disconnect."""
    import sqlite3

    from .test_metrics_scrape import scrape, value

    server = server_factory({**sqlite_env, **FAST, "REALTIME_LOG_LEVEL": "DEBUG"}).start()
    staff = await asyncio.to_thread(server.token, "admin")
    alice = await asyncio.to_thread(server.token, "alice")
    closes = "dexter_realtime_closes_total"
    before = await asyncio.to_thread(scrape, server, staff)
    ws = await websockets.connect(server.ws_url("tab-1", alice))
    connection_id = (await recv(ws))["connection_id"]
    locker = sqlite3.connect(server.env["DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        await ws.send(json.dumps({"type": "presence", "status": "away"}))
        await asyncio.sleep(0.2)  # the frame reaches the consumer, which now waits on the lock
        ws.transport.abort()
        started = time.monotonic()
        while "socket gone but never released; releasing it" not in server.log_path.read_text():
            assert time.monotonic() - started < 4, "the hub did not release the gone socket"
            await asyncio.sleep(0.1)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    # Unstuck, the consumer sees its disconnect (logged at DEBUG) and counts nothing more.
    deadline = time.monotonic() + 10
    while f"closed {connection_id}" not in server.log_path.read_text():
        assert time.monotonic() < deadline, "the consumer never saw its disconnect"
        await asyncio.sleep(0.1)
    samples = await asyncio.to_thread(scrape, server, staff)
    assert value(samples, closes, code="1006") == value(before, closes, code="1006") + 1
    total = sum(v for (name, _), v in samples.items() if name == closes)
    assert total == sum(v for (name, _), v in before.items() if name == closes) + 1
    async with websockets.connect(server.ws_url("ops-1", staff)) as console:
        await recv(console)
        await console.send(json.dumps({"type": "subscribe", "channel": "ops"}))
        while (sample := await recv(console, timeout=10)).get("type") != "ops_sample":
            pass
    ours = [c for c in sample["recent_closes"] if c["connection_id"] == connection_id]
    assert [(c["code"], c["reason"], c["username"]) for c in ours] == [("1006", "socket gone", "alice")]
    await assert_nothing_left(server, staff)


async def test_a_subscribe_that_finishes_after_the_hub_released_its_socket_leaves_no_hub_channel(fast_server):
    """Found by the chaos test: a subscribe waiting for the database thread (here
    behind bob's presence write, stuck on a locked database) when its socket goes;
    the hub releases the connection meanwhile, and the subscribe, finishing after,
    used to put the released connection back among the channel's subscribers."""
    import sqlite3

    server = fast_server
    staff = await asyncio.to_thread(server.token, "admin")
    alice = await asyncio.to_thread(server.token, "alice")
    bob = await asyncio.to_thread(server.token, "bob")
    holder = await websockets.connect(server.ws_url("tab-bob", bob))
    await recv(holder)
    ws = await websockets.connect(server.ws_url("tab-alice", alice))
    await recv(ws)
    locker = sqlite3.connect(server.env["DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        await holder.send(json.dumps({"type": "presence", "status": "away"}))  # takes the database thread
        await asyncio.sleep(0.2)
        await ws.send(json.dumps({"type": "subscribe", "channel": "issues"}))  # its check waits behind it
        await asyncio.sleep(0.2)
        ws.transport.abort()
        started = time.monotonic()
        while "socket gone but never released; releasing it" not in server.log_path.read_text():
            assert time.monotonic() - started < 4, "the hub did not release the gone socket"
            await asyncio.sleep(0.1)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    await holder.close()
    deadline = time.monotonic() + 8
    while (local := (await stats(server, staff))["this_process"]).get("connections") or local.get("subscriptions"):
        assert time.monotonic() < deadline, f"left behind: {local}"
        await asyncio.sleep(0.1)
    await assert_nothing_left(server, staff)
