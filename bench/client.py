"""A lean WebSocket client for the load generator: one asyncio protocol per socket.

Thousands of sockets share the load generator's one core, so a client library
that wakes a task per frame would measure itself rather than the server. This
protocol parses server frames straight out of ``data_received`` (server frames
are never masked), answers pings, inflates ``permessage-deflate`` messages, and
counts every byte it receives: the bytes on the wire of the table.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import zlib
from collections.abc import Callable

# Bytes received by every client of this process (frames and handshakes).
WIRE = {"bytes": 0}


class Closed(Exception):
    pass


# A large publication of the benchmark's own (``message(i, phase)``: the pad first, then
# ``i``, ``p``, ``t``), read by its tail: decoding 62.5 KB of padding per delivery capped
# one load-generator core at ~270 MB/s, far below what the slow-reader run asks.
SKIM_BYTES = 16384
_TAIL = re.compile(rb'"i":(\d+),"p":(\d+),"t":([0-9.eE+-]+)\}$')


def skim(tail: bytes) -> dict | None:
    match = _TAIL.search(tail)
    if match is None:
        return None
    return {"type": "announcement", "i": int(match[1]), "p": int(match[2]), "t": float(match[3])}


def mask_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (FIN set, masked as RFC 6455 requires of clients)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    if not n:
        return head + key
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


class BenchClient(asyncio.Protocol):
    """One socket. ``on_message(dict)`` gets every decoded text message after the replies awaited."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        compression: bool,
        on_message: Callable | None = None,
        skim: bool = False,
    ):
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\nSec-WebSocket-Version: 13\r\n"
            + ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if compression else "")
            + "\r\n"
        ).encode()
        self.on_message = on_message
        self.skim = skim  # large single-frame text messages read by their tail (SKIM_BYTES)
        self.buffer = bytearray()
        self.opened = asyncio.get_running_loop().create_future()
        self.waiters: list[tuple[str, asyncio.Future]] = []
        self.transport: asyncio.Transport | None = None
        self.handshaken = False
        self.inflate = None
        self.inflate_reset = False
        self.fragments: list[bytes] = []
        self.fragment_compressed = False
        self.close_code: int | None = None
        self.closed = False
        self.compressed_ok = False

    # --- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(Closed(f"connection lost during handshake: {exc}"))
        for _, fut in self.waiters:
            if not fut.done():
                fut.set_exception(Closed(f"closed with {self.close_code}"))
        self.waiters.clear()

    def data_received(self, data: bytes):
        WIRE["bytes"] += len(data)
        self.buffer += data
        if not self.handshaken:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            del self.buffer[: end + 4]
            status = head.split(" ", 2)[1] if " " in head else "?"
            if status != "101":
                if not self.opened.done():  # not when the caller gave up waiting already
                    self.opened.set_exception(Closed(f"handshake refused: HTTP {status}"))
                self.transport.close()
                return
            self.handshaken = True
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-extensions" and "permessage-deflate" in value:
                    self.inflate = zlib.decompressobj(-15)
                    self.inflate_reset = "server_no_context_takeover" in value
                    self.compressed_ok = True
            if not self.opened.done():
                self.opened.set_result(None)
        self._parse()

    # --- frames ---------------------------------------------------------------

    def _parse(self) -> None:
        buf = self.buffer
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            if size - start < n:
                break
            if self.skim and n > SKIM_BYTES and b0 == 0x81:  # FIN, text, not compressed
                msg = skim(bytes(buf[start + n - 128 : start + n]))
                if msg is not None:
                    pos = start + n
                    self._message(msg)
                    continue
            payload = bytes(buf[start : start + n])
            pos = start + n
            self._frame(b0, payload)
        if pos:
            del buf[:pos]

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        if opcode == 0x9:  # ping: answer with the same payload
            self.transport.write(mask_frame(0xA, payload))
            return
        if opcode == 0xA:
            return
        if opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closed:
                self.transport.write(mask_frame(0x8, payload[:2]))
                self.transport.close()
            return
        if opcode in (0x1, 0x2):
            self.fragment_compressed = bool(b0 & 0x40)
            self.fragments = [payload]
        else:
            self.fragments.append(payload)
        if not fin:
            return
        data = b"".join(self.fragments)
        self.fragments = []
        if self.fragment_compressed:
            data = self.inflate.decompress(data + b"\x00\x00\xff\xff")
            if self.inflate_reset:
                self.inflate = zlib.decompressobj(-15)
        self._message(json.loads(data))

    def _message(self, msg: dict) -> None:
        if self.waiters:
            kind, fut = self.waiters[0]
            if msg.get("type") in (kind, "error"):
                self.waiters.pop(0)
                if not fut.done():
                    fut.set_result(msg)
                return
        if self.on_message is not None:
            self.on_message(msg)

    # --- API ------------------------------------------------------------------

    def send_json(self, message: dict) -> None:
        if not self.closed:
            self.transport.write(mask_frame(0x1, json.dumps(message, separators=(",", ":")).encode()))

    def expect(self, kind: str) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append((kind, fut))
        return fut

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(mask_frame(0x8, (1000).to_bytes(2, "big")))
            self.transport.close()


async def open_client(
    host: str,
    port: int,
    path: str,
    *,
    compression: bool = False,
    on_message: Callable | None = None,
    subscribe: str | None = None,
    timeout: float = 60.0,
    skim: bool = False,
) -> BenchClient:
    """Connect, read the ``connection`` hello, and subscribe (awaiting ``subscribed``) if asked."""
    loop = asyncio.get_running_loop()
    holder: list[BenchClient] = []

    def factory():
        client = BenchClient(host, port, path, compression=compression, on_message=on_message, skim=skim)
        holder.append(client)
        hello = client.expect("connection")
        client.hello = hello
        return client

    async def run() -> BenchClient:
        await loop.create_connection(factory, host, port)
        client = holder[0]
        await client.opened
        hello = await client.hello
        if hello.get("type") != "connection":
            raise Closed(f"no hello: {hello}")
        if subscribe is not None:
            fut = client.expect("subscribed")
            client.send_json({"type": "subscribe", "channel": subscribe})
            reply = await fut
            if reply.get("type") != "subscribed":
                raise Closed(f"subscribe refused: {reply}")
        return client

    return await asyncio.wait_for(run(), timeout)


def now() -> float:
    return time.time()
