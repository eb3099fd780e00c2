"""No frame the server sends is over 1 MiB (section 5), against a real daphne process.

autobahn refuses to send a larger one (``PayloadExceededError``): a history reply,
a batch or a replayed row over the cap used to kill the consumer (1011) or vanish.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

pytestmark = pytest.mark.integration

MIB = 1 << 20


async def recv(ws, timeout=10.0) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def publish_many(server, channel: str, count: int, size: int) -> None:
    """``count`` announcements of ``size`` characters each, from another process, in one transaction."""
    server.shell(
        "from django.db import transaction\n"
        "from realtime.publisher import publish\n"
        "with transaction.atomic():\n"
        f"    for i in range({count}):\n"
        f"        publish({channel!r}, {{'type': 'announcement', 'message': str(i).rjust({size}, 'x')}})"
    )


async def test_history_over_one_mib_is_split_with_more_and_the_rest_follows(server):
    publish_many(server, "global", 1000, 1200)  # ~1.25 MB: one reply cannot hold it
    async with websockets.connect(server.ws_url("reader"), max_size=MIB) as ws:
        await recv(ws)
        seqs: list[int] = []
        since = 0
        while True:
            await ws.send(json.dumps({"type": "history", "channel": "global", "since": since, "ref": "h"}))
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert len(raw.encode()) <= MIB
            reply = json.loads(raw)
            assert reply["type"] == "history" and reply["recovered"] is True, reply.get("code")
            seqs += [m["seq"] for m in reply["messages"]]
            if not reply["more"]:
                break
            since = reply["messages"][-1]["seq"]
        assert seqs == list(range(1, 1001))
        assert since > 0  # it did take more than one reply


async def test_a_burst_over_one_mib_reaches_a_batching_client_in_frames_under_the_cap(sqlite_env, server_factory):
    # A long tick gathers the whole burst for one flush.
    server = server_factory({**sqlite_env, "WEBSOCKET_BATCH_TICK": "1.0"}).start()
    async with websockets.connect(server.ws_url("batcher", query="batch=1"), max_size=MIB) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "channel": "global"}))
        assert (await recv(ws))["type"] == "subscribed"
        await asyncio.to_thread(publish_many, server, "global", 400, 3000)  # ~1.2 MB
        seqs: list[int] = []
        while len(seqs) < 400:
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert len(raw.encode()) <= MIB
            frame = json.loads(raw)
            seqs += [m["seq"] for m in frame["messages"]] if frame["type"] == "batch" else [frame["seq"]]
        assert seqs == list(range(1, 401))


STORE_OVERSIZE_ROW = """
from django.utils import timezone
from realtime.models import ChannelSequence, Message
from realtime.protocol import encode, envelope, iso
now = timezone.now()
# Stored before REALTIME_MAX_PUBLICATION_SIZE existed: 1.2 MB, over any frame.
text = encode(envelope({'type': 'announcement', 'message': 'y' * 1_200_000}, channel='global', seq=2, ts=iso(now)))
Message.objects.create(channel='global', seq=2, type='announcement', payload=text, created_at=now)
ChannelSequence.objects.filter(channel='global').update(last_seq=2)
"""


async def test_resume_over_a_stored_row_too_large_for_any_frame_skips_it_and_says_not_recovered(server):
    publish_many(server, "global", 1, 10)
    server.shell(STORE_OVERSIZE_ROW)
    publish_many(server, "global", 1, 10)
    async with websockets.connect(server.ws_url("resumer"), max_size=MIB) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "subscribe", "channel": "global", "since": 0}))
        subscribed = await recv(ws)
        assert subscribed["type"] == "subscribed" and subscribed["seq"] == 3
        assert subscribed["recovered"] is False  # seq 2 cannot be had: reload
        assert [(await recv(ws))["seq"], (await recv(ws))["seq"]] == [1, 3]
        await ws.send(json.dumps({"type": "history", "channel": "global", "since": 0}))
        history = await recv(ws)
        assert [m["seq"] for m in history["messages"]] == [1, 3]
        assert history["recovered"] is False and history["more"] is False
        await ws.send(json.dumps({"type": "ping", "ref": "alive"}))
        assert (await recv(ws))["ref"] == "alive"
