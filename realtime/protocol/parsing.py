"""Client frames (docs/protocol.md section 3): every frame a client sends is parsed here.

``parse_frame`` turns one text frame into a ``ClientMessage`` or raises
``ProtocolError``: binary and empty frames, invalid JSON and non-objects are
``invalid_json``; wrong field types ``invalid_message``; other types
``unknown_type``. Whether the sender may do what it asks is policy's business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .codes import E_INVALID_JSON, E_INVALID_MESSAGE, E_UNKNOWN_TYPE, ProtocolError
from .jsontext import encode, loads_strict

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
PRESENCE_STATUSES = ("online", "away", "busy")
MAX_REF_LENGTH = 64
MAX_ACTIVITY_LENGTH = 200
MAX_HISTORY_LIMIT = 1000
CLIENT_TYPES = ("subscribe", "unsubscribe", "presence", "ping", "auth", "history", "signal")
SIGNAL_EVENT_RE = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_SIGNAL_DATA = 1024  # bytes of a signal's ``data``, encoded (section 11)


def valid_client_id(client_id: str) -> bool:
    return bool(CLIENT_ID_RE.match(client_id or ""))


@dataclass(frozen=True)
class ClientMessage:
    type: str
    ref: str | None
    channel: str | None = None
    since: int | None = None
    limit: int | None = None
    status: str | None = None
    activity: str | None = None
    timestamp: Any = None
    token: str | None = None
    presence: bool = False  # subscribe: join the channel's presence too (section 10)
    event: str | None = None  # signal (section 11)
    data: Any = None


def _int_field(data: dict, key: str, ref: str | None, *, minimum: int = 0) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProtocolError(E_INVALID_MESSAGE, f"{key} must be an integer >= {minimum}", ref=ref)
    return value


def parse_frame(text: str | None) -> ClientMessage:
    """Parse one client frame into a ClientMessage, or raise ProtocolError.

    Binary and empty frames, invalid JSON and non-objects are ``invalid_json``;
    wrong field types ``invalid_message``; other types ``unknown_type``.
    """
    if text is None:
        raise ProtocolError(E_INVALID_JSON, "frames must be JSON text, not binary")
    try:
        data = loads_strict(text)
    except (ValueError, RecursionError):
        raise ProtocolError(E_INVALID_JSON, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(E_INVALID_JSON, "frame must be a JSON object")
    ref = data.get("ref")
    if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH):
        raise ProtocolError(E_INVALID_MESSAGE, f"ref must be a string of at most {MAX_REF_LENGTH} characters")
    msg_type = data.get("type")
    if not isinstance(msg_type, str):
        raise ProtocolError(E_INVALID_MESSAGE, "type is required and must be a string", ref=ref)
    if msg_type not in CLIENT_TYPES:
        raise ProtocolError(E_UNKNOWN_TYPE, f"unknown message type {msg_type[:40]!r}", ref=ref)

    if msg_type in ("subscribe", "unsubscribe", "history"):
        channel = _channel_field(data, ref)
        since = _int_field(data, "since", ref) if msg_type != "unsubscribe" else None
        limit = None
        if msg_type == "history":
            limit = _int_field(data, "limit", ref, minimum=1)
            limit = MAX_HISTORY_LIMIT if limit is None else min(limit, MAX_HISTORY_LIMIT)
            since = since or 0
        with_presence = data.get("presence", False) if msg_type == "subscribe" else False
        if not isinstance(with_presence, bool):
            raise ProtocolError(E_INVALID_MESSAGE, "presence must be true or false", ref=ref, channel=channel)
        return ClientMessage(msg_type, ref, channel=channel, since=since, limit=limit, presence=with_presence)
    if msg_type == "presence" and "channel" in data:
        return _parse_channel_activity(data, ref)
    if msg_type == "signal":
        return _parse_signal(data, ref)
    if msg_type == "presence":
        status = data.get("status")
        if status not in PRESENCE_STATUSES:
            raise ProtocolError(E_INVALID_MESSAGE, "status must be one of online, away, busy", ref=ref)
        return ClientMessage(msg_type, ref, status=status, activity=_activity_field(data, ref))
    if msg_type == "ping":
        timestamp = data.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, str | int | float):
            raise ProtocolError(E_INVALID_MESSAGE, "timestamp must be a string or a number", ref=ref)
        return ClientMessage(msg_type, ref, timestamp=timestamp)
    # auth
    token = data.get("token")
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise ProtocolError(E_INVALID_MESSAGE, "token is required and must be a string", ref=ref)
    return ClientMessage(msg_type, ref, token=token)


def _channel_field(data: dict, ref: str | None) -> str:
    channel = data.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ProtocolError(E_INVALID_MESSAGE, "channel is required and must be a string", ref=ref)
    return channel


def _activity_field(data: dict, ref: str | None, channel: str | None = None) -> str | None:
    activity = data.get("activity")
    if activity is not None and (not isinstance(activity, str) or len(activity) > MAX_ACTIVITY_LENGTH):
        raise ProtocolError(
            E_INVALID_MESSAGE,
            f"activity must be a string of at most {MAX_ACTIVITY_LENGTH} characters",
            ref=ref,
            channel=channel,
        )
    return activity or None


def _parse_channel_activity(data: dict, ref: str | None) -> ClientMessage:
    """``presence`` with ``channel``: this connection's activity there (section 10); null is the default."""
    channel = _channel_field(data, ref)
    return ClientMessage("presence", ref, channel=channel, activity=_activity_field(data, ref, channel))


def _parse_signal(data: dict, ref: str | None) -> ClientMessage:
    """``signal`` (section 11): event 1-32 of a-z 0-9 _, data an object of at most 1 KiB encoded."""
    channel = _channel_field(data, ref)
    event = data.get("event")
    if not isinstance(event, str) or not SIGNAL_EVENT_RE.match(event):
        raise ProtocolError(E_INVALID_MESSAGE, "event must be 1-32 characters of a-z 0-9 _", ref=ref, channel=channel)
    payload = data.get("data", {})
    if not isinstance(payload, dict):
        raise ProtocolError(E_INVALID_MESSAGE, "data must be an object", ref=ref, channel=channel)
    try:
        size = len(encode(payload).encode())
    except UnicodeEncodeError:  # a lone surrogate: no valid JSON text holds one
        size = MAX_SIGNAL_DATA + 1
    if size > MAX_SIGNAL_DATA:
        raise ProtocolError(
            E_INVALID_MESSAGE, f"data must be at most {MAX_SIGNAL_DATA} bytes encoded", ref=ref, channel=channel
        )
    return ClientMessage("signal", ref, channel=channel, event=event, data=payload)
