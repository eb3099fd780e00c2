"""A session over a WebSocket (docs/protocol.md sections 1-5): subscribe with ``since``,
ping at the server's interval, and fill gaps from ``history`` before printing past them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .endpoints import display_url, socket_url
from .session import Fatal, Session


class WebSocketSession(Session):
    """The client over ``/ws/<client_id>/``."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        super().__init__(args, out, err)
        self.gap_refs: dict[str, str] = {}  # channel -> ref of its pending ``history`` request
        self.refs = 0

    async def _session(self) -> tuple[int, bool]:
        """One connection; returns (close code, whether it got as far as `connection`)."""
        url = socket_url(self.args.url, self.args.client_id, self.token, self.args.batch)
        self.tracker.forget_held()
        self.gap_refs.clear()
        opened = False
        try:
            async with connect(url, open_timeout=10, max_size=2**24) as ws:
                heartbeat = None
                try:
                    async for raw in ws:
                        try:
                            message = json.loads(raw)
                        except ValueError:
                            continue
                        if message.get("type") == "connection":
                            opened = True
                            heartbeat = asyncio.create_task(self._heartbeat(ws, message.get("heartbeat_interval")))
                            self.emit(message)
                            for channel in self.args.channel:
                                await self._subscribe(ws, channel)
                            continue
                        await self._handle(ws, message)
                        if self.done:
                            await ws.close()
                            return 1000, opened
                finally:
                    if heartbeat is not None:
                        heartbeat.cancel()
                return (ws.close_code or 1006), opened
        except ConnectionClosed as exc:
            return (exc.rcvd.code if exc.rcvd is not None else 1006), opened
        except InvalidURI as exc:
            # Its text holds the whole URL, token included: never print it.
            raise Fatal(1, f"bad --url {display_url(self.args.url)}: use ws:// or wss://") from exc
        except (TimeoutError, OSError, InvalidHandshake) as exc:
            self.log(f"could not connect: {exc}")
            return 1006, opened

    async def _subscribe(self, ws, channel: str) -> None:
        frame: dict[str, Any] = {"type": "subscribe", "channel": channel, "ref": f"sub:{channel}"}
        since = self.tracker.last.get(channel, self.since.get(channel))
        if since is not None:
            frame["since"] = since
        self.since[channel] = since  # type: ignore[assignment]
        await ws.send(json.dumps(frame))

    async def _heartbeat(self, ws, interval: Any) -> None:
        # The server closes with 4408 after twice the interval without a message.
        seconds = float(interval) if isinstance(interval, int | float) and interval > 0 else 30.0
        while True:
            await asyncio.sleep(seconds)
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            await ws.send(json.dumps({"type": "ping", "timestamp": stamp}))

    async def _handle(self, ws, message: dict) -> None:
        kind = message.get("type")
        if kind == "batch":
            for inner in message.get("messages") or []:
                await self._handle(ws, inner)
            return
        if kind == "pong":
            return
        ref = message.get("ref")
        if kind == "subscribed":
            channel = message["channel"]
            reset = self.tracker.subscribed(
                channel, self.since.get(channel), int(message.get("seq") or 0), message.get("recovered", True)
            )
            self.emit(message)
            if reset:
                self.log(f"reset: messages on {channel} after {self.since.get(channel)} are gone")
            return
        if kind == "error" and isinstance(ref, str) and ref.startswith("sub:"):
            self.emit(message)
            raise Fatal(1, f"cannot subscribe to {ref[4:]}: {message.get('code')}")
        if isinstance(ref, str) and ref in self.gap_refs.values():
            channel = next(c for c, r in self.gap_refs.items() if r == ref)
            del self.gap_refs[channel]
            await self._gap_filled(ws, channel, message)
            return
        if isinstance(message.get("channel"), str) and isinstance(message.get("seq"), int):
            for out in self.tracker.accept(message):
                self.emit(out, publication=True)
            await self._request_gap(ws, message["channel"])
            return
        self.emit(message)

    async def _request_gap(self, ws, channel: str) -> None:
        gap = self.tracker.gap(channel)
        if gap is None or channel in self.gap_refs:
            return
        since, limit = gap
        if limit <= 0:
            return
        self.refs += 1
        ref = self.gap_refs[channel] = f"gap:{self.refs}"
        await ws.send(json.dumps({"type": "history", "channel": channel, "since": since, "limit": limit, "ref": ref}))

    async def _gap_filled(self, ws, channel: str, reply: dict) -> None:
        messages = (reply.get("messages") or []) if reply.get("type") == "history" else []
        for out in self.tracker.fill(channel, messages):
            self.emit(out, publication=True)
        gap = self.tracker.gap(channel)
        if gap is None:
            return
        # Fewer than asked is the end only when the server did not stop early (``more``: its 1 MiB bound).
        short = len(messages) < gap[1] and not reply.get("more")
        if reply.get("type") != "history" or not reply.get("recovered", True) or short:
            self.log(f"reset: messages on {channel} after {gap[0]} are gone")
            for out in self.tracker.skip_gap(channel):
                self.emit(out, publication=True)
        else:
            await self._request_gap(ws, channel)
