"""The command line of ``python -m realtime.client``: its options, and the session they ask for."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import urllib.parse
from typing import TextIO

from .endpoints import display_url
from .session import Session
from .sse_session import SSESession
from .ws_session import WebSocketSession


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


def open_session(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Session:
    """The session of ``--transport``."""
    return (SSESession if args.transport == "sse" else WebSocketSession)(args, out, err)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(open_session(args).run())
    except KeyboardInterrupt:
        return 130
