"""JSON text as the wire carries it: strict both ways (docs/protocol.md section 5).

In, ``loads_strict`` refuses what no valid JSON text holds (``invalid_json``);
out, ``encode`` never writes text a peer cannot read. Both exist because
Python's ``json`` accepts and writes NaN, Infinity and lone surrogates, which
fail later, in daphne's or SQLite's UTF-8 encoder.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any


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


def utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))
