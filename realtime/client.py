"""dexter-realtime, a command-line client: subscribe to channels and print messages as JSON lines.

    python -m realtime.client --url ws://127.0.0.1:8000 --username alice --password ... \\
        --channel issues --channel global [--since N] [--transport sse]

It speaks protocol version 1 (docs/protocol.md) with the ``websockets`` library, or
reads the server-sent events stream ``GET /sse/`` (section 13) with ``httpx``
when ``--transport sse`` (for networks that break WebSockets), and imports
nothing from Django, so operators can copy it anywhere. The one rule a
caller must know: every publication is printed once and in order per channel;
after a reconnect the client resumes each channel with ``since`` and drops
repeats by (channel, seq). A ``reset`` line on stderr means messages were lost
for good (``recovered: false``).

Exit status: 0 after ``--count`` messages or a normal close, 1 when the server
says stay closed (1008, 4403, 4409, 4413) or reconnects ran out, 2 when
authentication fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

# Close codes of docs/protocol.md section 5, by what a client does after them.
RECONNECT_CODES = frozenset({1001, 1006, 1011, 4408, 4429, 4500, 4503})
FINAL_CODES = frozenset({1000, 1008, 4403, 4409, 4413})
CLOSE_TOKEN_INVALID = 4401

RECONNECT = "reconnect"
REFRESH_TOKEN = "refresh_token"
STOP = "stop"

# The server caps history requests at 1000 messages (section 3).
MAX_HISTORY_LIMIT = 1000


def close_action(code: int) -> str:
    """What to do after the server closes with ``code`` (section 5).

    Codes the contract does not list (1005, 1012, ...) are most likely network or
    server trouble, so they reconnect; the attempt limit bounds the retries.
    """
    if code in FINAL_CODES:
        return STOP
    if code == CLOSE_TOKEN_INVALID:
        return REFRESH_TOKEN
    return RECONNECT


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before reconnect ``attempt`` (1-based): in [d/2, d], d = min(cap, base * 2**(attempt-1)).

    Half fixed, half random ("equal jitter"): clients dropped together spread out
    without any of them retrying at once.
    """
    ceiling = min(cap, base * 2 ** min(max(attempt, 1) - 1, 30))
    return ceiling / 2 + rand() * ceiling / 2


@dataclass
class ChannelTracker:
    """Per-channel order and dedup by (channel, seq), with no I/O.

    ``accept`` returns the messages to emit now, in order; a message past a gap is
    held until ``fill`` brings the missing ones from ``history``, or ``skip_gap``
    gives up on them.
    """

    last: dict[str, int] = field(default_factory=dict)
    held: dict[str, dict[int, dict]] = field(default_factory=dict)

    def subscribed(self, channel: str, since: int | None, latest: int, recovered: bool) -> bool:
        """Record a ``subscribed`` reply; True when the missed messages are gone (reset)."""
        if since is None:
            self.last[channel] = latest
            return False
        if not recovered or latest < since:
            self.last[channel] = latest
            return True
        return False

    def accept(self, message: dict) -> list[dict]:
        channel, seq = message["channel"], message["seq"]
        last = self.last.get(channel)
        if last is not None and seq <= last:
            return []
        if last is not None and seq > last + 1:
            self.held.setdefault(channel, {})[seq] = message
            return []
        self.last[channel] = seq
        return [message, *self._drain(channel)]

    def gap(self, channel: str) -> tuple[int, int] | None:
        """(since, limit) of the history request that fills the channel's gap, if any."""
        held = self.held.get(channel)
        if not held:
            return None
        last = self.last.get(channel, 0)
        return last, min(min(held) - last - 1, MAX_HISTORY_LIMIT)

    def fill(self, channel: str, messages: list[dict]) -> list[dict]:
        last = self.last.get(channel, 0)
        held = self.held.setdefault(channel, {})
        for message in messages:
            if message.get("channel") == channel and isinstance(message.get("seq"), int) and message["seq"] > last:
                held[message["seq"]] = message
        return self._drain(channel)

    def skip_gap(self, channel: str) -> list[dict]:
        held = self.held.get(channel)
        if not held:
            return []
        self.last[channel] = min(held) - 1
        return self._drain(channel)

    def forget_held(self) -> None:
        """Drop held messages (on reconnect, the resubscription with ``since`` replays them)."""
        self.held.clear()

    def _drain(self, channel: str) -> list[dict]:
        held = self.held.get(channel, {})
        out = []
        while held:
            last = self.last[channel]
            for seq in [s for s in held if s <= last]:
                del held[seq]
            nxt = held.pop(last + 1, None)
            if nxt is None:
                break
            self.last[channel] = nxt["seq"]
            out.append(nxt)
        if not held:
            self.held.pop(channel, None)
        return out


SIGN_IN_ERRORS = {
    400: "username and password are required",
    401: "wrong username or password",
    429: "too many sign-in attempts, try again later",
}


def redact(text: str, token: str | None) -> str:
    """``text`` without ``token`` in it (a library's error may quote the URL it was given)."""
    return text.replace(token, "<token>") if token else text


def display_url(url: str) -> str:
    """Scheme, host and path of ``url``: never its query (which may carry a token)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", "")).replace(
        f"//{parts.hostname}", f"//{parts.netloc.rpartition('@')[2]}"
    )


def http_base(ws_url: str) -> str:
    parts = urllib.parse.urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


DEFAULT_TOKEN_PATH = "/api/auth/token/"


def token_endpoint(ws_url: str, token_url: str | None) -> str:
    """Where to sign in: ``token_url`` as given when absolute, else a path on the server."""
    target = token_url or DEFAULT_TOKEN_PATH
    if urllib.parse.urlsplit(target).scheme in ("http", "https"):
        return target
    return http_base(ws_url) + "/" + target.lstrip("/")


def fetch_token(ws_url: str, username: str, password: str, timeout: float = 10, token_url: str | None = None) -> str:
    """A SimpleJWT access token from ``POST <token_url>`` (default ``/api/auth/token/``)."""
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(
        token_endpoint(ws_url, token_url), data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())["access"]


def socket_url(base: str, client_id: str, token: str | None, batch: bool) -> str:
    params = {}
    if token:
        params["token"] = token
    if batch:
        params["batch"] = "1"
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    return f"{base.rstrip('/')}/ws/{urllib.parse.quote(client_id)}/{query}"


class Fatal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Client:
    """Connect, subscribe, print; reconnect and resume until told to stop."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.args = args
        self.out = out
        self.err = err
        self.token: str | None = args.token
        self.tracker = ChannelTracker()
        self.since: dict[str, int] = {c: args.since for c in args.channel} if args.since is not None else {}
        self.printed = 0
        self.gap_refs: dict[str, str] = {}
        self.refs = 0

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(f"dexter-realtime: {redact(message, self.token)}", file=self.err, flush=True)

    def emit(self, message: dict, publication: bool = False) -> None:
        print(json.dumps(message, separators=(",", ":"), ensure_ascii=False), file=self.out, flush=True)
        if publication:
            self.printed += 1

    @property
    def done(self) -> bool:
        return self.args.count is not None and self.printed >= self.args.count

    def login(self) -> None:
        if self.args.username is None:
            return
        try:
            self.token = fetch_token(
                self.args.url, self.args.username, self.args.password or "", token_url=self.args.token_url
            )
        except urllib.error.HTTPError as exc:
            raise Fatal(
                2, f"sign-in failed: {SIGN_IN_ERRORS.get(exc.code, 'the server said no')} (HTTP {exc.code})"
            ) from exc
        except (OSError, ValueError, KeyError) as exc:
            raise Fatal(2, f"sign-in failed: {exc}") from exc

    async def run(self) -> int:
        try:
            if self.token is None:
                self.login()
            return await self._loop()
        except Fatal as exc:
            self.log(str(exc))
            return exc.status

    async def _loop(self) -> int:
        attempts = 0
        while True:
            code, opened = await self._session()
            if self.done:
                return 0
            if opened:
                attempts = 0
            action = close_action(code)
            if action == STOP:
                self.log(f"closed with {code}: staying closed")
                return 0 if code == 1000 else 1
            if action == REFRESH_TOKEN:
                if self.args.username is None:
                    raise Fatal(2, "token rejected (4401) and no --username to sign in again")
                self.login()
            max_attempts = self.args.max_reconnect_attempts
            if max_attempts and attempts >= max_attempts:
                self.log(f"closed with {code}: gave up after {attempts} reconnect attempts")
                return 1
            attempts += 1
            delay = 0.0 if action == REFRESH_TOKEN and attempts == 1 else self._delay(attempts)
            self.log(f"closed with {code}: reconnect attempt {attempts} in {delay:.1f}s")
            await asyncio.sleep(delay)

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self.args.reconnect_interval, self.args.max_reconnect_delay)

    async def _session(self) -> tuple[int, bool]:
        """One connection; returns (close code, whether it got as far as `connection`)."""
        if self.args.transport == "sse":
            return await self._sse_session()
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

    async def _sse_session(self) -> tuple[int, bool]:
        """One ``GET /sse/`` stream: the channels at once, resumed from their positions.

        A stream has no close frame: the server's ``event: close`` carries the
        code a socket would have been closed with, and a stream that just ends
        reads as 1006.
        """
        import httpx
        from httpx_sse import SSEError, aconnect_sse

        self.tracker.forget_held()
        params = {"channels": ",".join(self.args.channel), "client_id": self.args.client_id}
        position = self._position()
        if position:
            params["since"] = position
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        # The server pings every 15 s by default: a read silent for 45 s is a dead stream.
        timeout = httpx.Timeout(10, read=45)
        opened = False
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                async with aconnect_sse(
                    http, "GET", http_base(self.args.url) + "/sse/", params=params, headers=headers
                ) as source:
                    response = source.response
                    if response.status_code != 200:
                        return await self._sse_refused(response), False
                    async for event in source.aiter_sse():
                        try:
                            message = json.loads(event.data)
                        except ValueError:
                            continue
                        if event.event == "close":
                            return int(message.get("code") or 1006), opened
                        if event.event == "connection":
                            opened = True
                            self._resume_from(event.id)
                        elif event.event == "recovery":
                            channel = message.get("channel")
                            self.log(f"reset: messages on {channel} after {self.since.get(channel)} are gone")
                            message = {"type": "recovery", **message}
                        elif isinstance(message.get("channel"), str) and isinstance(message.get("seq"), int):
                            for out in [*self.tracker.accept(message), *self.tracker.skip_gap(message["channel"])]:
                                self.emit(out, publication=True)
                            if self.done:
                                return 1000, opened
                            continue
                        self.emit(message)
            return 1006, opened
        except httpx.InvalidURL as exc:
            raise Fatal(1, f"bad --url: {exc}") from exc
        except (httpx.HTTPError, SSEError, OSError) as exc:
            self.log(f"stream failed: {type(exc).__name__} {exc}")
            return 1006, opened

    async def _sse_refused(self, response) -> int:
        """A refused stream: 401 is a token to refresh, 503 a retry, anything else final."""
        try:
            body = json.loads(await response.aread())
        except ValueError:
            body = {"type": "error", "code": f"http_{response.status_code}"}
        if response.status_code == 401:
            self.log(f"stream refused: {body.get('code')}")
            return CLOSE_TOKEN_INVALID
        if response.status_code in (429, 502, 503, 504):
            return 4503
        self.emit(body)
        raise Fatal(
            1, f"cannot open the stream: HTTP {response.status_code} {body.get('code')} {body.get('channel') or ''}"
        )

    def _position(self) -> str:
        parts = []
        for channel in self.args.channel:
            since = self.tracker.last.get(channel, self.since.get(channel))
            if since is not None:
                parts.append(f"{channel}={since}")
        return ",".join(parts)

    def _resume_from(self, position: str | None) -> None:
        """The stream's position at its start: publications at or below it were printed already (or are gone)."""
        for part in (position or "").split(","):
            channel, _, seq = part.rpartition("=")
            if channel and seq.isdigit():
                self.tracker.last[channel] = int(seq)

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m realtime.client",
        description="Subscribe to Dexter real-time channels and print each message as a JSON line.",
    )
    parser.add_argument("--url", default=os.environ.get("DEXTER_WS_URL", "ws://127.0.0.1:8000"), help="server base")
    parser.add_argument("--client-id", default=f"cli-{os.getpid()}-{random.randrange(16**6):06x}")
    auth = parser.add_argument_group("authentication (default: anonymous)")
    auth.add_argument("--token", default=os.environ.get("DEXTER_TOKEN"), help="a JWT access token")
    auth.add_argument("--username", help="sign in with POST to --token-url (and again after 4401)")
    auth.add_argument("--password", default=os.environ.get("DEXTER_PASSWORD"))
    auth.add_argument(
        "--token-url",
        default=os.environ.get("DEXTER_TOKEN_URL"),
        help="where --username signs in: a path on the server or a full http(s) URL (default: /api/auth/token/)",
    )
    parser.add_argument("--channel", action="append", help="repeatable; default: global")
    parser.add_argument("--since", type=int, help="replay messages with seq > SINCE on every channel first")
    parser.add_argument("--count", type=int, help="exit after printing this many publications")
    parser.add_argument("--batch", action="store_true", help="connect with ?batch=1 (WebSocket only)")
    parser.add_argument(
        "--transport",
        choices=["websocket", "sse"],
        default="websocket",
        help="sse: read GET /sse/ over plain HTTP, where WebSockets are blocked",
    )
    parser.add_argument("--reconnect-interval", type=float, default=1.0, help="backoff base, seconds")
    parser.add_argument("--max-reconnect-delay", type=float, default=30.0, help="backoff cap, seconds")
    parser.add_argument("--max-reconnect-attempts", type=int, default=0, help="0: keep trying")
    parser.add_argument("--quiet", action="store_true", help="no status lines on stderr")
    args = parser.parse_args(argv)
    args.channel = args.channel or ["global"]
    scheme = urllib.parse.urlsplit(args.url).scheme
    if scheme not in ("ws", "wss"):
        better = {"http": "ws", "https": "wss"}.get(scheme)
        hint = f" (for {display_url(args.url)} use {better}://)" if better else ""
        parser.error(f"--url must start with ws:// or wss://{hint}")
    if args.username and args.password is None:
        parser.error("--username needs --password (or DEXTER_PASSWORD)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(Client(args).run())
    except KeyboardInterrupt:
        return 130


__all__ = ["ChannelTracker", "Client", "backoff_delay", "close_action", "main"]

if __name__ == "__main__":
    sys.exit(main())
