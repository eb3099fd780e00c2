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

The parts: ``cli`` (options), ``session`` (the reconnect loop) with
``ws_session`` and ``sse_session`` (one connection each), ``ordering`` (order and
dedup, no I/O), ``reconnect`` (what a close code means, backoff), ``endpoints``
(URLs and sign-in).

Exit status: 0 after ``--count`` messages or a normal close, 1 when the server
says stay closed (1008, 4403, 4409, 4413) or reconnects ran out, 2 when
authentication fails.
"""

from __future__ import annotations

from .cli import main, open_session
from .ordering import ChannelTracker
from .reconnect import backoff_delay, close_action
from .session import Session
from .sse_session import SSESession
from .ws_session import WebSocketSession

__all__ = [
    "ChannelTracker",
    "SSESession",
    "Session",
    "WebSocketSession",
    "backoff_delay",
    "close_action",
    "main",
    "open_session",
]
