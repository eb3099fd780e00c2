"""SSE subscribers against WebSocket subscribers, in the same run of one server process.

    python -m bench.sse [--clients 1000] [--messages 200]

One ``manage.py runrealtime`` process holds N WebSocket subscribers of ``global``
and N SSE streams (``GET /sse/?channels=issues``) at once; the figures are the
server's RSS growth per connection as each group connects, and its CPU (utime +
stime from /proc) per delivered message while ``publish()`` in another process
sends M messages to one group's channel, then M to the other's. The clients are
the raw asyncio ones of bench/client.py (and a counting SSE reader here), pinned
to another core than the server where the machine allows it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from .client import open_client
from .servers import ROOT, ServerProcess, Variant, prepare_template, raise_nofile

MARKER = b"event: announcement\n"

PUBLISH = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")
import django
django.setup()
from realtime.publisher import publish
channel, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    publish(channel, {"type": "announcement", "message": "x" * 100, "i": i})
"""


class SSEReader(asyncio.Protocol):
    """A stream that counts its ``announcement`` events (the marker never spans two writes of a whole event)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.tail = b""
        self.opened = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        buf = self.tail + data
        if not self.opened.done() and b"event: connection\n" in buf:
            self.opened.set_result(True)
        self.count += buf.count(MARKER)
        self.tail = buf[-(len(MARKER) - 1) :]

    def connection_lost(self, exc) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("stream closed before it opened"))


async def open_sse(port: int, token: str, i: int) -> SSEReader:
    loop = asyncio.get_running_loop()
    path = f"/sse/?channels=issues&client_id=bench-{i}&token={token}"
    _transport, reader = await loop.create_connection(lambda: SSEReader(path), "127.0.0.1", port)
    await asyncio.wait_for(reader.opened, 60)
    return reader


async def gather_bounded(factories, limit: int = 50) -> list:
    sem = asyncio.Semaphore(limit)

    async def one(f):
        async with sem:
            return await f()

    return await asyncio.gather(*(one(f) for f in factories))


async def publish(env: dict, channel: str, count: int) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISH, channel, str(count), cwd=ROOT, env=env)
    if await proc.wait() != 0:
        raise RuntimeError("the publisher failed")


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        await asyncio.sleep(0.05)


async def settle(server: ServerProcess) -> int:
    """RSS once it stops moving (the server frees what connecting left behind)."""
    last = server.rss_kb()
    for _ in range(20):
        await asyncio.sleep(0.5)
        now = server.rss_kb()
        if abs(now - last) < 64:
            return now
        last = now
    return last


async def deliver(server: ServerProcess, channel: str, counted, n: int, messages: int) -> float:
    """Server CPU microseconds per delivered message for ``messages`` publications to ``n`` subscribers."""
    target = counted() + n * messages
    cpu0 = server.cpu()
    await publish(server.env, channel, messages)
    await until(lambda: counted() >= target, 300, f"{channel}: every message delivered")
    return (server.cpu() - cpu0) / (n * messages) * 1e6


async def run(opts) -> dict:
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="bench-sse-"))
    template = prepare_template(workdir)
    extra = {
        "WEBSOCKET_MAX_CONNECTIONS": str(2 * opts.clients + 100),
        "WEBSOCKET_CONNECT_RATE": "1000000",
        "JWT_ACCESS_LIFETIME": "3600",
    }
    server = ServerProcess(Variant("dexter-sse", "dexter"), workdir, template, extra_env=extra).start()
    ws_counts = [0]
    try:
        token = server.token("alice")

        def on_message(msg: dict) -> None:
            if msg.get("type") == "announcement":
                ws_counts[0] += 1

        # Warm the server up (imports, the hub, first queries), unmeasured.
        warm = await open_client("127.0.0.1", server.port, "/ws/warm/", on_message=on_message, subscribe="global")
        warm.close()
        base = await settle(server)
        sockets = await gather_bounded(
            [
                (
                    lambda i=i: open_client(
                        "127.0.0.1", server.port, f"/ws/bench-{i}/", on_message=on_message, subscribe="global"
                    )
                )
                for i in range(opts.clients)
            ]
        )
        with_ws = await settle(server)

        async def keep_alive() -> None:  # silence for 2 x the heartbeat closes a socket (4408)
            while True:
                await asyncio.sleep(20)
                for s in sockets:
                    s.send_json({"type": "ping"})

        pinger = asyncio.ensure_future(keep_alive())
        streams = await gather_bounded([(lambda i=i: open_sse(server.port, token, i)) for i in range(opts.clients)])
        with_sse = await settle(server)

        n = opts.clients
        ws_total = lambda: ws_counts[0]  # noqa: E731
        sse_total = lambda: sum(s.count for s in streams)  # noqa: E731
        await deliver(server, "global", ws_total, n, 20)  # warm-up rounds, unmeasured
        await deliver(server, "issues", sse_total, n, 20)
        ws_us = await deliver(server, "global", ws_total, n, opts.messages)
        sse_us = await deliver(server, "issues", sse_total, n, opts.messages)
        # Every subscriber got every publication once: 20 + M per transport.
        expected = n * (20 + opts.messages)
        delivered = {"websocket": ws_total(), "sse": sse_total()}
        pinger.cancel()
        for s in sockets:
            s.close()
        for s in streams:
            s.transport.close()
        return {
            "clients": n,
            "messages": opts.messages,
            "websocket": {
                "cpu_us_per_delivered": round(ws_us, 1),
                "kb_per_connection": round((with_ws - base) / n, 1),
                "delivered": delivered["websocket"],
                "expected": expected,
            },
            "sse": {
                "cpu_us_per_delivered": round(sse_us, 1),
                "kb_per_connection": round((with_sse - with_ws) / n, 1),
                "delivered": delivered["sse"],
                "expected": expected,
            },
        }
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sse", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000, help="subscribers of each transport (default 1000)")
    p.add_argument("--messages", type=int, default=200, help="publications measured per transport (default 200)")
    p.add_argument("--json", type=Path, help="also write the result here")
    opts = p.parse_args(argv)
    result = asyncio.run(run(opts))
    print("| transport | server CPU per delivered message | server memory per connection |")
    print("|---|---|---|")
    for kind in ("websocket", "sse"):
        r = result[kind]
        print(f"| {kind} | {r['cpu_us_per_delivered']} us | {r['kb_per_connection']} KB |")
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
