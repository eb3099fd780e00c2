"""Every connection's send buffer is bounded (WEBSOCKET_SEND_BUFFER_LIMIT), against a real daphne process.

A client that stops reading used to make the server hold everything sent to it
(Twisted's write buffer is unbounded) and stay open; now it is closed with 4500
once what the server holds for it passes the bound, and everyone else is served.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.request

import pytest
import websockets

from tests.integration.test_release_e2e import client_frame, handshake, stats

pytestmark = pytest.mark.integration


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def prometheus_text(server, token: str) -> str:
    req = urllib.request.Request(server.http + "/api/realtime/metrics/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def publish(server, count: int, size: int) -> None:
    server.shell(
        "from django.db import transaction\n"
        "from realtime.publisher import publish\n"
        f"for batch in range({count} // 20):\n"
        "    with transaction.atomic():\n"
        "        for i in range(20):\n"
        f"            publish('global', {{'type': 'announcement', 'message': str(i).rjust({size}, 'x')}})"
    )


async def test_a_client_that_stops_reading_is_closed_and_the_others_get_everything(server):
    staff = await asyncio.to_thread(server.token, "admin")
    slow = await asyncio.to_thread(handshake, server.port, "/ws/slow/")
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(client_frame(0x1, json.dumps({"type": "subscribe", "channel": "global"}).encode()))
    async with websockets.connect(server.ws_url("fast"), max_size=1 << 20) as fast:
        await asyncio.wait_for(fast.recv(), 5)
        await fast.send(json.dumps({"type": "subscribe", "channel": "global"}))
        assert json.loads(await asyncio.wait_for(fast.recv(), 5))["type"] == "subscribed"
        before = rss_kb(server.proc.pid)

        async def read_all() -> list[int]:
            seqs = []
            while len(seqs) < 200:
                seqs.append(json.loads(await asyncio.wait_for(fast.recv(), 30))["seq"])
            return seqs

        reader = asyncio.ensure_future(read_all())  # reading all along, as a live client does
        # 12 MB for every subscriber; the slow one stops reading after its kernel buffers fill.
        await asyncio.to_thread(publish, server, 200, 60000)
        assert await reader == list(range(1, 201))
        deadline = time.monotonic() + 10
        while (await stats(server, staff))["this_process"]["connections"] != 1:
            assert time.monotonic() < deadline, "the slow reader was never closed"
            await asyncio.sleep(0.2)
        grown_mb = (rss_kb(server.proc.pid) - before) / 1024
        assert grown_mb < 10, f"the server grew by {grown_mb:.0f} MB for a reader that never reads"
    metrics = await asyncio.to_thread(prometheus_text, server, staff)
    assert re.search(r"^dexter_realtime_send_buffer_closes_total 1\.0$", metrics, re.M), metrics[:3000]
    slow.close()
