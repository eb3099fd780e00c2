"""Reference server: the raw ``websockets`` library with ``websockets.broadcast()``.

    python -m bench.ref_raw --port 8765 [--compression]

It speaks the smallest part of the Dexter protocol the benchmark needs: a
``connection`` hello, ``subscribe`` -> ``subscribed``, and ``publish`` (from the
load generator's publisher socket), which is given the same envelope as a
Dexter publication (channel, seq, ts), encoded once and broadcast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
from datetime import UTC, datetime

import websockets
from websockets.asyncio.server import serve

subscribers: set = set()
seq = 0


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


async def handler(ws) -> None:
    global seq
    await ws.send(encode({"type": "connection", "protocol": 1}))
    try:
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "subscribe":
                subscribers.add(ws)
                await ws.send(encode({"type": "subscribed", "channel": msg["channel"], "seq": seq}))
            elif kind == "publish":
                seq += 1
                ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                body = {"type": msg["message"]["type"], "channel": "global", "seq": seq, "ts": ts}
                body.update((k, v) for k, v in msg["message"].items() if k != "type")
                websockets.broadcast(subscribers, encode(body))
            elif kind == "ping":
                await ws.send(encode({"type": "pong", "timestamp": msg.get("timestamp")}))
    finally:
        subscribers.discard(ws)


async def main(port: int, compression: bool) -> None:
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression="deflate" if compression else None,
        max_size=65536,
        # The library's defaults, stated: ping every 20 s, like daphne's.
        ping_interval=20,
        backlog=1024,
    ) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compression", action="store_true")
    opts = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(opts.port, opts.compression))
