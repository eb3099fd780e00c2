"""Server-sent events as bytes (docs/protocol.md section 13), with no I/O.

An event is ``event:`` (the message's ``type``), ``id:`` (the stream position)
and one ``data:`` line holding the same JSON text a WebSocket client receives.
The position is every channel's latest delivered ``seq``, ``issues=131,issue:123=57``;
a browser sends the last one back as ``Last-Event-ID``.
"""

from __future__ import annotations

import json
import re

from .protocol import E_INVALID_MESSAGE, ProtocolError, parse_channel

# A type that needs no escaping as an ``event:`` field (the common case: no JSON decoding).
_PLAIN_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_TYPE_HEAD = '{"type":"'
MAX_POSITION_LENGTH = 16384

# The last publication text and its type: the hub hands one ``str`` to every stream.
_last_type: list = [None, b""]


def event_type(text: str) -> bytes:
    """The ``type`` of an encoded message, as an ``event:`` value (no line breaks)."""
    if text is _last_type[0]:
        return _last_type[1]
    kind = None
    if text.startswith(_TYPE_HEAD):
        end = text.find('"', len(_TYPE_HEAD))
        candidate = text[len(_TYPE_HEAD) : end]
        if end > 0 and _PLAIN_TYPE.fullmatch(candidate):
            kind = candidate
    if kind is None:
        try:
            kind = str(json.loads(text).get("type") or "message")
        except (ValueError, AttributeError):
            kind = "message"
        kind = kind.replace("\r", " ").replace("\n", " ")
    encoded = kind.encode()
    _last_type[0], _last_type[1] = text, encoded
    return encoded


def event(kind: bytes, text: str, position: bytes | None) -> bytes:
    """One event. JSON text never holds a raw line break, so ``data:`` is one line."""
    data = text.encode()
    if b"\n" in data or b"\r" in data:  # not JSON from us: one data line per line
        data = b"\ndata: ".join(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
    head = b"event: " + kind + b"\n"
    if position:
        head += b"id: " + position + b"\n"
    return head + b"data: " + data + b"\n\n"


# The last publication sent to streams of that one channel, and its event.
_last_single: list = [None, b""]


def single_channel_event(text: str, channel: str, seq: int) -> bytes:
    """The event of a stream holding only ``channel`` (its position is ``channel=seq``), built once per publication."""
    if text is _last_single[0]:
        return _last_single[1]
    data = event(event_type(text), text, f"{channel}={seq}".encode())
    _last_single[0], _last_single[1] = text, data
    return data


def comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"


def retry(milliseconds: int) -> bytes:
    return b"retry: " + str(int(milliseconds)).encode() + b"\n\n"


def format_position(positions: dict[str, int]) -> bytes:
    return ",".join(f"{channel}={seq}" for channel, seq in positions.items()).encode()


def parse_position(value: str) -> dict[str, int]:
    """``issues=131,issue:123=57`` -> {"issues": 131, "issue:123": 57}; ProtocolError if malformed."""
    out: dict[str, int] = {}
    value = value.strip()
    if not value:
        return out
    if len(value) > MAX_POSITION_LENGTH:
        raise ProtocolError(E_INVALID_MESSAGE, "position is too long")
    for part in value.split(","):
        name, sep, seq = part.strip().rpartition("=")
        if not sep or not seq.isdigit() or len(seq) > 18:
            raise ProtocolError(E_INVALID_MESSAGE, "position must look like issues=131,issue:123=57")
        out[parse_channel(name).name] = int(seq)
    return out
