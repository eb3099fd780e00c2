"""What the server says when something is wrong (docs/protocol.md section 5):
close codes with their reason texts, ``error`` codes, and ``ProtocolError``.

An application may only send 1000 and 3000-4999, so every policy close
mirrors an HTTP status in the 4000 range.
"""

from __future__ import annotations

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


class ProtocolError(Exception):
    """A client frame that breaks the contract; becomes an ``error`` reply."""

    def __init__(self, code: str, message: str, *, ref: str | None = None, channel: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.channel = channel
