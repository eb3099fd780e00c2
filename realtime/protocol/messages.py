"""Server messages (docs/protocol.md sections 1, 4 and 5): the shapes the server sends, built here.

Consumers, views and publishers call these and never build protocol dicts of
their own; a publication's envelope fields come first, as section 4 shows them.
"""

from __future__ import annotations

from typing import Any

from .timestamps import now_iso

PROTOCOL_VERSION = 1


def with_ref(message: dict, ref: str | None) -> dict:
    if ref is not None:
        message["ref"] = ref
    return message


def error(code: str, message: str, *, ref: str | None = None, channel: str | None = None) -> dict:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        out["channel"] = channel
    return with_ref(out, ref)


def user_dict(user: Any) -> dict | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return {"id": str(user.pk), "username": user.get_username()}


def connection_message(*, client_id: str, connection_id: str, user: Any, heartbeat_interval: float) -> dict:
    info = user_dict(user)
    interval = int(heartbeat_interval) if float(heartbeat_interval).is_integer() else heartbeat_interval
    return {
        "type": "connection",
        "protocol": PROTOCOL_VERSION,
        "client_id": client_id,
        "connection_id": connection_id,
        "authenticated": info is not None,
        "user": info,
        "heartbeat_interval": interval,
        "server_time": now_iso(),
    }


def envelope(message: dict, *, channel: str, seq: int, ts: str) -> dict:
    """A publication with its envelope fields first, as section 4 shows them."""
    body = {k: v for k, v in message.items() if k not in ("type", "channel", "seq", "ts")}
    return {"type": message["type"], "channel": channel, "seq": seq, "ts": ts, **body}
