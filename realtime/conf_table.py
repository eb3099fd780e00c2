"""The real-time settings: every one's default and bounds (README.md "Configuration" has the table).

``realtime.conf`` reads them; the type of a setting is the type of its default.
Every limit of docs/protocol.md section 9 is one of these.
"""

from __future__ import annotations

import re
from typing import Any

DEFAULTS = {
    "WEBSOCKET_ENABLED": True,
    "WEBSOCKET_HEARTBEAT_INTERVAL": 30.0,
    "WEBSOCKET_MAX_CONNECTIONS": 1000,
    "WEBSOCKET_MAX_SUBSCRIPTIONS": 100,
    "WEBSOCKET_MAX_MESSAGE_SIZE": 65536,
    "WEBSOCKET_ALLOWED_ORIGINS": [],
    "WEBSOCKET_CONNECT_RATE": 60,
    "WEBSOCKET_MESSAGE_RATE": 20.0,
    "WEBSOCKET_PRESENCE_GRACE": 5.0,
    # A client that lets this many frames pile up unsent reads too slowly (4500).
    "WEBSOCKET_SEND_QUEUE_LIMIT": 1000,
    # Bytes written to one connection that its client has not read yet; past it, 4500.
    "WEBSOCKET_SEND_BUFFER_LIMIT": 1048576,
    # Server-sent events (GET /sse/): a ``: ping`` comment this often keeps proxies
    # from closing an idle stream; ``retry:`` tells a browser how soon to reconnect (ms).
    "REALTIME_SSE_PING_INTERVAL": 15.0,
    "REALTIME_SSE_RETRY": 2000,
    # How long ?batch=1 connections gather publications before one frame goes out.
    "WEBSOCKET_BATCH_TICK": 0.02,
    # permessage-deflate under ``manage.py runrealtime`` (bench/README.md: off costs less).
    "WEBSOCKET_COMPRESSION": False,
    # Plain keep-alive POSTs read by realtime/plain_http.py instead of Twisted's HTTP stack.
    "REALTIME_PLAIN_HTTP": True,
    # Bytes of one encoded publication; the HTTP API answers 400 for a write that would make a larger one.
    "REALTIME_MAX_PUBLICATION_SIZE": 65536,
    # Seconds between each server's check of its sockets' users and token sessions (revocation.py).
    "REALTIME_REVOCATION_INTERVAL": 5.0,
    "REALTIME_HISTORY_SIZE": 1000,
    "REALTIME_HISTORY_TTL": 86400,
    "REALTIME_POLL_INTERVAL": 0.25,
    # Wake other processes' servers at commit (PostgreSQL NOTIFY, or a loopback
    # datagram on SQLite; realtime/doorbell.py): "auto", or "off" for the poller alone.
    "REALTIME_DOORBELL": "auto",
    # Channel kinds (``presence``, ``user``, ...) whose history is not served.
    "REALTIME_NO_HISTORY": [],
    "REALTIME_CHANNEL_POLICY": "realtime.policy.default_policy",
    # DRF rate of POST /api/realtime/broadcast/ and /notify/ per user, unless the
    # project's DEFAULT_THROTTLE_RATES has a "realtime_publish" entry.
    "REALTIME_PUBLISH_THROTTLE": "600/min",
    # Move what exists when the hub starts (Django, every module) out of the
    # garbage collector's sight, so a full collection scans only what came
    # later: pauses of every socket of 66-102 ms became 22-43 ms (bench/README.md).
    "REALTIME_GC_FREEZE": True,
    # The longest wait between tries to reach an unreachable channel layer (realtime/outage.py).
    "REALTIME_LAYER_RETRY_MAX": 30.0,
    # Seconds between the samples each server publishes on `ops` while /ops/ is open (realtime/ops.py).
    "REALTIME_OPS_INTERVAL": 2.0,
}


# Numbers are >= 0; these must be > 0, since 0 breaks the server: a heartbeat
# interval of 0 closes every socket at once, a limit of 0 refuses everything.
POSITIVE = frozenset(
    {
        "WEBSOCKET_HEARTBEAT_INTERVAL",
        "WEBSOCKET_MAX_CONNECTIONS",
        "WEBSOCKET_MAX_SUBSCRIPTIONS",
        "WEBSOCKET_MAX_MESSAGE_SIZE",
        "WEBSOCKET_CONNECT_RATE",
        "WEBSOCKET_MESSAGE_RATE",
        "WEBSOCKET_SEND_QUEUE_LIMIT",
        "WEBSOCKET_SEND_BUFFER_LIMIT",
        "REALTIME_SSE_PING_INTERVAL",
        "REALTIME_LAYER_RETRY_MAX",
        "REALTIME_OPS_INTERVAL",
        "WEBSOCKET_BATCH_TICK",
        "REALTIME_MAX_PUBLICATION_SIZE",
        "REALTIME_HISTORY_SIZE",
        "REALTIME_HISTORY_TTL",
        "REALTIME_POLL_INTERVAL",
        "REALTIME_REVOCATION_INTERVAL",
    }
)
# Upper bounds past which a value cannot take effect: autobahn fails any
# connection whose message passes 1 MiB before the application sees it.
MAXIMUM = {"WEBSOCKET_MAX_MESSAGE_SIZE": 1048576}

# DRF rates: a number, a slash, a period (s, m, h or d, or a word starting with one).
RATES = frozenset({"REALTIME_PUBLISH_THROTTLE"})
RATE_RE = re.compile(r"[0-9]+/[smhd][a-z]*")

# Settings that take one of a few words.
CHOICES = {"REALTIME_DOORBELL": ("auto", "off", "0", "false", "no")}

# Settings that change nothing a client sees on the wire (how the servers reach
# each other and manage memory); every other one is in docs/protocol.md section 9.
SERVER_SIDE = frozenset(
    {
        "REALTIME_POLL_INTERVAL",
        "REALTIME_DOORBELL",
        "REALTIME_GC_FREEZE",
        "REALTIME_LAYER_RETRY_MAX",
        "REALTIME_PLAIN_HTTP",
    }
)


def check_bounds(name: str, value: Any) -> None:
    """Raise ValueError(why) when ``value``, already of the right type, is out of ``name``'s bounds."""
    if name in RATES and not RATE_RE.fullmatch(str(value)):
        raise ValueError("is not a rate such as 600/min")
    if name in CHOICES and str(value).lower() not in CHOICES[name]:
        raise ValueError("is not one of " + ", ".join(CHOICES[name]))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if name in POSITIVE and value <= 0:
        raise ValueError("must be greater than 0")
    if value < 0:
        raise ValueError("must not be negative")
    if name in MAXIMUM and value > MAXIMUM[name]:
        raise ValueError(f"must be at most {MAXIMUM[name]}")
