"""A client gone, or sending, before its ``connection`` frame is written leaves no ghost (a real daphne process).

- The race of issue 10: the client's close frame reaches autobahn after the
  upgrade but before the consumer (its ``Connection`` row being written) sends
  its first frame, so that send raises ``Disconnected`` ("Attempt to send on a
  closed protocol"). In the wild the window is about one turn of the loop;
  here it is held open: the test holds SQLite's write lock while the client
  reads the 101 and sends pings and a close, reading nothing more: autobahn's
  answers (4 MB, past what the kernel buffers of the two ends take) back up
  in Twisted, so after the close its TCP connection cannot finish and daphne
  does not yet ignore sends. Once the server has read it all, the test lets
  the row be written.
- Frames sent with the upgrade request, before the server's 101 (RFC 6455
  4.1 says a client must wait): Twisted's HTTP channel keeps them, so they
  never reach the WebSocket, and past 16 KB it pauses the socket's reading,
  which nothing resumed once the upgrade's clean-up unregistered the channel:
  the socket was deaf (its frames, its close, its reset never seen) until
  the heartbeat closed it. The server now drops such a connection at once
  (the client sees 1006, reconnects and sends again).

Afterwards the server holds nothing (``/api/realtime/stats/``,
``/presence/``), released by the consumer itself: the heartbeat is long, so
the hub's reaper (2 x the interval) cannot be what cleaned up, and its
warning must not be in the log.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sqlite3
import struct
import time
from pathlib import Path

import pytest
import websockets

from .test_release_e2e import assert_nothing_left, client_frame, recv, stats

pytestmark = pytest.mark.integration

PING = client_frame(0x9, b"p" * 125)
CLOSE = client_frame(0x8, struct.pack("!H", 1000))
CLIENTS = 3
PINGS = 32000  # 4 MB of answers


def upgrade_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def raw_socket(port: int) -> socket.socket:
    """A client socket with a small receive buffer, so what it does not read backs up in the server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(1)
        assert chunk, "closed by the server"
        data += chunk
    return data


def server_read_everything(sock: socket.socket, server_port: int) -> bool:
    """The server's end of ``sock`` has nothing left to read (its Recv-Q in /proc/net/tcp)."""
    client_port = sock.getsockname()[1]
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return int(fields[4].split(":")[1], 16) == 0
    return False


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def ended_by_server(sock: socket.socket) -> bool:
    """Read until the server ends the connection (True) or 10 s pass (False)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


@pytest.fixture
def server(sqlite_env, server_factory):
    # A long heartbeat (the reaper would need 2 x 30 s), a short presence grace.
    env = {**sqlite_env, "WEBSOCKET_HEARTBEAT_INTERVAL": "30", "WEBSOCKET_PRESENCE_GRACE": "0.3"}
    return server_factory(env).start()


async def assert_released_by_the_consumers(server, staff: str) -> None:
    # Well within the reaper's 2 x 30 s: what is clean now, the consumers released.
    await assert_nothing_left(server, staff, timeout=10)
    assert "socket gone but never released" not in server.log_path.read_text()


@pytest.mark.timeout(120)
async def test_client_closing_before_the_connection_frame_leaves_no_ghost(server):
    staff = await asyncio.to_thread(server.token, "admin")
    async with websockets.connect(server.ws_url("warm-up")) as ws:  # the hub is started
        await recv(ws)
    locker = sqlite3.connect(server.env["DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)
    socks = []
    try:
        locker.execute("BEGIN IMMEDIATE")  # the consumers wait to write their rows
        for i in range(CLIENTS):
            sock = await asyncio.to_thread(raw_socket, server.port)
            socks.append(sock)
            sock.sendall(upgrade_request(server.port, f"/ws/gone-{i}/"))
            await asyncio.to_thread(read_until, sock, b"\r\n\r\n")  # accepted: the row is next
            await asyncio.to_thread(sock.sendall, PING * PINGS + CLOSE)
            deadline = time.monotonic() + 30
            while not server_read_everything(sock, server.port):  # and autobahn took the close
                assert time.monotonic() < deadline, "the server did not read the pings"
                await asyncio.sleep(0.05)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    try:
        deadline = time.monotonic() + 30  # every consumer past its row, its hub entry and its first send
        while (await stats(server, staff))["connections"] < len(socks):
            assert time.monotonic() < deadline, await stats(server, staff)
            await asyncio.sleep(0.1)
        await stats(server, staff)
    finally:
        for sock in socks:
            reset(sock)
    await assert_released_by_the_consumers(server, staff)
    async with websockets.connect(server.ws_url("after")) as ws:
        assert (await recv(ws))["type"] == "connection"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pings", [1, 1500], ids=["one-frame", "past-the-channel-s-16KB"])
async def test_frames_sent_before_the_101_end_the_connection_instead_of_vanishing(server, pings):
    staff = await asyncio.to_thread(server.token, "admin")
    alice = await asyncio.to_thread(server.token, "alice")
    sock = await asyncio.to_thread(raw_socket, server.port)
    try:
        frame = client_frame(0x1, json.dumps({"type": "ping", "ref": "early"}).encode())
        sock.sendall(upgrade_request(server.port, f"/ws/early/?token={alice}") + PING * (pings - 1) + frame)
        assert await asyncio.to_thread(ended_by_server, sock), "the server kept a socket whose frames it lost"
    finally:
        reset(sock)
    await assert_released_by_the_consumers(server, staff)
