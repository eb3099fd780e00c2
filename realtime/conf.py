"""Real-time settings, read when asked (never at import time), with their defaults.

Every limit of docs/protocol.md section 9 is one of these; README.md has the table.
"""

from __future__ import annotations

from django.conf import settings

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
    # Bytes of one encoded publication; the HTTP API answers 400 for a write that would make a larger one.
    "REALTIME_MAX_PUBLICATION_SIZE": 65536,
    "REALTIME_HISTORY_SIZE": 1000,
    "REALTIME_HISTORY_TTL": 86400,
    "REALTIME_POLL_INTERVAL": 0.25,
    # Wake other processes' servers at commit (PostgreSQL NOTIFY, or a loopback
    # datagram on SQLite; realtime/doorbell.py): "auto", or "off" for the poller alone.
    "REALTIME_DOORBELL": "auto",
    # Channel kinds (``presence``, ``user``, ...) whose history is not served.
    "REALTIME_NO_HISTORY": [],
    "REALTIME_CHANNEL_POLICY": "realtime.policy.default_policy",
    # Move what exists when the hub starts (Django, every module) out of the
    # garbage collector's sight, so a full collection scans only what came
    # later: pauses of every socket of 66-102 ms became 22-43 ms (bench/README.md).
    "REALTIME_GC_FREEZE": True,
    # The longest wait between tries to reach an unreachable channel layer (realtime/outage.py).
    "REALTIME_LAYER_RETRY_MAX": 30.0,
}


def get(name: str):
    return getattr(settings, name, DEFAULTS[name])


def allowed_origins() -> list[str]:
    """Origins a browser may connect from; by default the hosts of ALLOWED_HOSTS."""
    configured = get("WEBSOCKET_ALLOWED_ORIGINS")
    if configured:
        return list(configured)
    return list(settings.ALLOWED_HOSTS)
