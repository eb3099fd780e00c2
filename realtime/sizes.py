"""How large a publication may be (``REALTIME_MAX_PUBLICATION_SIZE``), for those who build one from user input.

``publish()`` refuses a larger publication outright; the HTTP API checks first,
so a client gets a 400 naming its field instead of a failed write. A message
built around user text (a comment inside an ``issue_update``) checks the text
against a budget: what is left of the bound after ``reserve`` bytes for the
rest of the message, shared by the ``copies`` of the text it may hold (an
edit carries the old and the new body).
"""

from __future__ import annotations

from . import conf
from .protocol import encode

# What the envelope adds to a message: channel (at most 100), seq, ts and their keys.
ENVELOPE_RESERVE = 512


def max_publication_size() -> int:
    return int(conf.get("REALTIME_MAX_PUBLICATION_SIZE"))


def encoded_size(value) -> int:
    """Bytes of ``value`` as it goes on the wire (compact JSON, UTF-8)."""
    return len(encode(value).encode("utf-8", "surrogatepass"))


def message_too_large(message: dict) -> str | None:
    """Why ``message`` cannot be published as it is, or None when it fits."""
    limit = max_publication_size()
    if encoded_size(message) + ENVELOPE_RESERVE > limit:
        return f"too large: a publication is at most {limit} bytes encoded"
    return None


def text_too_large(text: str, *, reserve: int, copies: int = 1) -> str | None:
    """Why ``text`` cannot go into a message of ``reserve`` other bytes ``copies`` times, or None."""
    budget = max(0, (max_publication_size() - reserve) // copies)
    if encoded_size(text) > budget:
        return f"too long: at most {budget} bytes (as JSON, UTF-8)"
    return None
