"""Reference server: the raw ``websockets`` library with ``websockets.broadcast()``.

    python -m bench.ref_raw --port 8765 [--compression] [--http-port 8766]

It speaks the smallest part of the Dexter protocol the benchmark needs: a
``connection`` hello, ``subscribe`` -> ``subscribed``, and ``publish`` (from the
load generator's publisher socket), which is given the same envelope as a
Dexter publication (channel, seq, ts), encoded once and broadcast.

With ``--http-port`` it also takes publications as Dexter's HTTP publishers
send them, ``POST`` with ``{"channel", "message"}`` over keep-alive HTTP/1.1,
answered ``202`` with the publication: the bare HTTP port the issue's
comparison is made against (no authentication, no store, no framework), so
the ``raw-http`` row pays what any server pays for a request and its pacing.
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


def broadcast(message: dict) -> str:
    global seq
    seq += 1
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"type": message["type"], "channel": "global", "seq": seq, "ts": ts}
    body.update((k, v) for k, v in message.items() if k != "type")
    text = encode(body)
    websockets.broadcast(subscribers, text)
    return text


async def http_publisher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive HTTP/1.1 POSTs of ``{"channel", "message"}``; each is broadcast and answered 202."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length))
            answer = broadcast(body["message"]).encode()
            writer.write(
                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def handler(ws) -> None:
    await ws.send(encode({"type": "connection", "protocol": 1}))
    try:
        async for raw in ws:
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "subscribe":
                subscribers.add(ws)
                await ws.send(encode({"type": "subscribed", "channel": msg["channel"], "seq": seq}))
            elif kind == "publish":
                broadcast(msg["message"])
            elif kind == "ping":
                await ws.send(encode({"type": "pong", "timestamp": msg.get("timestamp")}))
    finally:
        subscribers.discard(ws)


async def main(port: int, compression: bool, http_port: int | None) -> None:
    if http_port is not None:
        await asyncio.start_server(http_publisher, "127.0.0.1", http_port)
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
    parser.add_argument("--http-port", type=int, default=None)
    opts = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(opts.port, opts.compression, opts.http_port))
