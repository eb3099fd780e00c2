"""The wire contract (docs/protocol.md, version 1) as plain Python, with no I/O.

Every client frame is parsed here (``parse_frame``) and every message shape the
server sends is built here; consumers, views and publishers call these and
never build protocol dicts of their own. Nothing here touches Django settings.

``from realtime.protocol import X`` is the way in for every caller; the parts,
each importing only those listed before it:

- ``codes``: close codes and their reasons, ``error`` codes, ``ProtocolError``;
- ``jsontext``: strict JSON both ways (``loads_strict``, ``encode``);
- ``timestamps``: ``now_iso``, ``iso``;
- ``channel_names``: ``Channel`` and ``parse_channel`` against the registry;
- ``parsing``: client frames (``parse_frame``, ``ClientMessage``);
- ``messages``: server messages (``connection_message``, ``error``, ``envelope``);
- ``frames``: ``batch`` frames and ``history`` replies spliced from encoded text.
"""

from __future__ import annotations

from .channel_names import Channel, parse_channel
from .codes import (
    CLOSE_DISCONNECTED,
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_RATE_LIMITED,
    CLOSE_REASONS,
    CLOSE_REPLACED,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TOKEN_INVALID,
    CLOSE_TOO_LARGE,
    CLOSE_TRY_AGAIN,
    E_FORBIDDEN,
    E_HISTORY_UNAVAILABLE,
    E_INVALID_JSON,
    E_INVALID_MESSAGE,
    E_NOT_FOUND,
    E_RATE_LIMITED,
    E_TOKEN_EXPIRED,
    E_TOKEN_INVALID,
    E_TOO_MANY_SUBSCRIPTIONS,
    E_UNKNOWN_CHANNEL,
    E_UNKNOWN_TYPE,
    REASON_AT_CAPACITY,
    REASON_CONNECTING_TOO_FAST,
    REASON_SHUTTING_DOWN,
    ProtocolError,
)
from .frames import MAX_FRAME_SIZE, batch_frame, batch_frames, history_frame, history_reply
from .jsontext import encode, loads_strict, utf8_len
from .messages import PROTOCOL_VERSION, connection_message, envelope, error, user_dict, with_ref
from .parsing import (
    CLIENT_ID_RE,
    CLIENT_TYPES,
    MAX_ACTIVITY_LENGTH,
    MAX_HISTORY_LIMIT,
    MAX_REF_LENGTH,
    MAX_SIGNAL_DATA,
    PRESENCE_STATUSES,
    SIGNAL_EVENT_RE,
    ClientMessage,
    parse_frame,
    valid_client_id,
)
from .timestamps import iso, iso_utc, now_iso

__all__ = [
    "CLIENT_ID_RE",
    "CLIENT_TYPES",
    "CLOSE_DISCONNECTED",
    "CLOSE_HEARTBEAT_TIMEOUT",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_RATE_LIMITED",
    "CLOSE_REASONS",
    "CLOSE_REPLACED",
    "CLOSE_SLOW_CONSUMER",
    "CLOSE_TOKEN_INVALID",
    "CLOSE_TOO_LARGE",
    "CLOSE_TRY_AGAIN",
    "E_FORBIDDEN",
    "E_HISTORY_UNAVAILABLE",
    "E_INVALID_JSON",
    "E_INVALID_MESSAGE",
    "E_NOT_FOUND",
    "E_RATE_LIMITED",
    "E_TOKEN_EXPIRED",
    "E_TOKEN_INVALID",
    "E_TOO_MANY_SUBSCRIPTIONS",
    "E_UNKNOWN_CHANNEL",
    "E_UNKNOWN_TYPE",
    "MAX_ACTIVITY_LENGTH",
    "MAX_FRAME_SIZE",
    "MAX_HISTORY_LIMIT",
    "MAX_REF_LENGTH",
    "MAX_SIGNAL_DATA",
    "PRESENCE_STATUSES",
    "PROTOCOL_VERSION",
    "REASON_AT_CAPACITY",
    "REASON_CONNECTING_TOO_FAST",
    "REASON_SHUTTING_DOWN",
    "SIGNAL_EVENT_RE",
    "Channel",
    "ClientMessage",
    "ProtocolError",
    "batch_frame",
    "batch_frames",
    "connection_message",
    "encode",
    "envelope",
    "error",
    "history_frame",
    "history_reply",
    "iso",
    "iso_utc",
    "loads_strict",
    "now_iso",
    "parse_channel",
    "parse_frame",
    "user_dict",
    "utf8_len",
    "valid_client_id",
    "with_ref",
]
