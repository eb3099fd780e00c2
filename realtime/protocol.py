"""The wire contract (docs/protocol.md, version 1) as plain Python, with no I/O.

Every client frame is parsed here (``parse_frame``) and every message shape the
server sends is built here; consumers, views and publishers call these and
never build protocol dicts of their own. Nothing here touches Django settings.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import registry

PROTOCOL_VERSION = 1

# --- Close codes (docs/protocol.md section 5). An application may only send 1000 and
# 3000-4999, so every policy close mirrors an HTTP status in the 4000 range.
CLOSE_NORMAL = 1000
# The RFC's "internal error": sent after an unexpected failure; clients resume.
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TOO_LARGE = 4413
CLOSE_TRY_AGAIN = 4503
CLOSE_TOKEN_INVALID = 4401
CLOSE_HEARTBEAT_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_RATE_LIMITED = 4429
CLOSE_DISCONNECTED = 4403
CLOSE_SLOW_CONSUMER = 4500

# The close frame's reason text for each policy close, so a client's log says why
# (at most 123 bytes, RFC 6455). A closer may give a more precise one (4503's cases).
CLOSE_REASONS = {
    CLOSE_TOO_LARGE: "message too large",
    CLOSE_TRY_AGAIN: "try again later",
    CLOSE_TOKEN_INVALID: "token invalid or expired",
    CLOSE_HEARTBEAT_TIMEOUT: "heartbeat timeout",
    CLOSE_REPLACED: "replaced by a newer connection",
    CLOSE_RATE_LIMITED: "rate limit exceeded",
    CLOSE_DISCONNECTED: "disconnected by the server",
    CLOSE_SLOW_CONSUMER: "reading too slowly",
}
REASON_AT_CAPACITY = "server at capacity"
REASON_CONNECTING_TOO_FAST = "connection attempts too fast"
REASON_SHUTTING_DOWN = "server shutting down"

# --- Error codes (section 5)
E_INVALID_JSON = "invalid_json"
E_INVALID_MESSAGE = "invalid_message"
E_UNKNOWN_TYPE = "unknown_type"
E_UNKNOWN_CHANNEL = "unknown_channel"
E_FORBIDDEN = "forbidden"
E_NOT_FOUND = "not_found"
E_HISTORY_UNAVAILABLE = "history_unavailable"
E_TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
E_RATE_LIMITED = "rate_limited"
E_TOKEN_INVALID = "token_invalid"
E_TOKEN_EXPIRED = "token_expired"

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
PRESENCE_STATUSES = ("online", "away", "busy")
MAX_REF_LENGTH = 64
MAX_ACTIVITY_LENGTH = 200
MAX_HISTORY_LIMIT = 1000
CLIENT_TYPES = ("subscribe", "unsubscribe", "presence", "ping", "auth", "history", "signal")
SIGNAL_EVENT_RE = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_SIGNAL_DATA = 1024  # bytes of a signal's ``data``, encoded (section 11)

ISSUE_UPDATE_TYPES = (
    "created",
    "updated",
    "status_changed",
    "resolved",
    "assigned",
    "commented",
    "deleted",
)


class ProtocolError(Exception):
    """A client frame that breaks the contract; becomes an ``error`` reply."""

    def __init__(self, code: str, message: str, *, ref: str | None = None, channel: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.channel = channel


@dataclass(frozen=True)
class Channel:
    """A parsed protocol channel: ``issue:12`` is Channel("issue", "12")."""

    kind: str
    object_id: str | None = None

    @property
    def name(self) -> str:
        return self.kind if self.object_id is None else f"{self.kind}:{self.object_id}"


def parse_channel(name: Any) -> Channel:
    """Parse a channel name of a registered kind (realtime.registry), or raise
    ProtocolError(unknown_channel). Ids are canonical: ``issue:0001`` is unknown."""
    if not isinstance(name, str) or not name:
        raise ProtocolError(E_INVALID_MESSAGE, "channel must be a non-empty string")
    found = registry.lookup(name)
    if found is None:
        shown = name[: registry.MAX_NAME_LENGTH]
        raise ProtocolError(E_UNKNOWN_CHANNEL, f"unknown channel {shown!r}", channel=shown)
    entry, object_id = found
    return Channel(entry.kind, object_id)


def now_iso() -> str:
    """The current UTC time as ISO 8601 with a Z suffix, to the millisecond."""
    return iso_utc(datetime.now(UTC))


def iso_utc(value: datetime) -> str:
    """``value`` as ISO 8601 in UTC with a Z suffix, to the millisecond."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso(value: datetime | None) -> str | None:
    """``iso_utc`` for a timestamp that may be missing (``last_seen`` of someone never seen)."""
    return None if value is None else iso_utc(value)


def valid_client_id(client_id: str) -> bool:
    return bool(CLIENT_ID_RE.match(client_id or ""))


# --- Parsing client frames -------------------------------------------------


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


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e400 is valid JSON text but no float holds it
        raise ValueError("number out of range")
    return value


_strict_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _has_surrogate(value: Any) -> bool:
    """A lone UTF-16 surrogate anywhere in a decoded value, keys included (pairs
    decode to one character, so any surrogate left is a lone one)."""
    if isinstance(value, str):
        return _SURROGATE_RE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses what no valid JSON text holds (section 5,
    ``invalid_json``): NaN, Infinity, numbers no float holds, lone surrogates.
    They would otherwise fail later, in daphne's or SQLite's UTF-8 encoder."""
    data = _strict_decoder.decode(text)
    # Text from the socket is decoded UTF-8, so a surrogate can only come from a
    # \u escape; other text (a test, a caller) is checked whole.
    if ("\\u" in text or not text.isascii()) and _has_surrogate(data):
        raise ValueError("lone surrogate")
    return data


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
        channel = data.get("channel")
        if not isinstance(channel, str) or not channel:
            raise ProtocolError(E_INVALID_MESSAGE, "channel is required and must be a string", ref=ref)
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
        activity = data.get("activity")
        if activity is not None and (not isinstance(activity, str) or len(activity) > MAX_ACTIVITY_LENGTH):
            raise ProtocolError(
                E_INVALID_MESSAGE, f"activity must be a string of at most {MAX_ACTIVITY_LENGTH} characters", ref=ref
            )
        return ClientMessage(msg_type, ref, status=status, activity=activity or None)
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


def _parse_channel_activity(data: dict, ref: str | None) -> ClientMessage:
    """``presence`` with ``channel``: this connection's activity there (section 10); null is the default."""
    channel = _channel_field(data, ref)
    activity = data.get("activity")
    if activity is not None and (not isinstance(activity, str) or len(activity) > MAX_ACTIVITY_LENGTH):
        raise ProtocolError(
            E_INVALID_MESSAGE,
            f"activity must be a string of at most {MAX_ACTIVITY_LENGTH} characters",
            ref=ref,
            channel=channel,
        )
    return ClientMessage("presence", ref, channel=channel, activity=activity or None)


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


# --- Building server messages ----------------------------------------------


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


def encode(message: dict) -> str:
    """Compact JSON, encoded once per publication and reused for every recipient.

    Never text a peer cannot read: NaN and Infinity raise ValueError (a caller's
    bug, refused before anything is stored or sent), and a lone surrogate, which
    no UTF-8 encoder takes, becomes U+FFFD instead of failing in daphne.
    """
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    if not text.isascii() and _SURROGATE_RE.search(text):
        text = _SURROGATE_RE.sub("\ufffd", text)
    return text


# The largest frame the server sends (section 5): the WebSocket layer's own cap
# (autobahn refuses to send more, PayloadExceededError), in bytes of payload.
MAX_FRAME_SIZE = 1 << 20


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def batch_frame(texts: list[str]) -> str:
    """Join already-encoded publications into one ``batch`` frame without re-encoding."""
    return '{"type":"batch","messages":[' + ",".join(texts) + "]}"


_BATCH_OVERHEAD = len(batch_frame([]))


def batch_frames(texts: list[str], limit: int = MAX_FRAME_SIZE) -> list[str]:
    """``texts`` as few frames as fit under ``limit`` bytes each, in order: one
    ``batch`` per run that fits, a lone publication as itself (never a batch of one)."""
    out: list[str] = []
    run: list[str] = []
    size = _BATCH_OVERHEAD
    for text in texts:
        n = utf8_len(text) + 1  # and its comma
        if run and size + n > limit:
            out.append(run[0] if len(run) == 1 else batch_frame(run))
            run, size = [], _BATCH_OVERHEAD
        run.append(text)
        size += n
    if run:
        out.append(run[0] if len(run) == 1 else batch_frame(run))
    return out


def history_frame(channel: str, frames: list[str], recovered: bool, ref: str | None) -> str:
    """The ``history`` body of the HTTP API, splicing stored frames in without decoding them."""
    head = encode(with_ref({"type": "history", "channel": channel, "recovered": recovered}, ref))
    return head[:-1] + ',"messages":[' + ",".join(frames) + "]}"


def history_reply(
    channel: str, frames: list[str], recovered: bool, ref: str | None, limit: int = MAX_FRAME_SIZE
) -> tuple[str, int, bool]:
    """The ``history`` reply on the socket, splicing stored frames in without decoding them.

    Holds as many of ``frames`` (in order) as fit under ``limit`` bytes; returns
    (reply, how many it holds, whether one of them was too large for any
    reply and is left out). ``more`` is true when it stopped before the end.
    A stored frame too large even alone (a row from before
    REALTIME_MAX_PUBLICATION_SIZE) is skipped, and ``recovered`` is then false:
    the client cannot have that message and must reload its state.
    """

    def head(recovered: bool, more: bool) -> str:
        message = {"type": "history", "channel": channel, "recovered": recovered, "more": more}
        return encode(with_ref(message, ref))[:-1] + ',"messages":['

    room = limit - utf8_len(head(False, False)) - 2  # the closing "]}"
    kept: list[str] = []
    used = 0
    skipped = False
    taken = 0
    for text in frames:
        n = utf8_len(text) + (1 if kept else 0)
        if n - (1 if kept else 0) > room:
            skipped = True  # never fits: leave it out, but say so
            taken += 1
            continue
        if used + n > room:
            break
        kept.append(text)
        used += n
        taken += 1
    more = taken < len(frames)
    return head(recovered and not skipped, more) + ",".join(kept) + "]}", taken, skipped
