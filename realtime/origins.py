"""Which browser origins may open a socket or a stream (docs/protocol.md section 9).

Used by the WebSocket handshake (``consumers``) and the SSE request (``sse``) alike.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.http.request import split_domain_port, validate_host

from . import conf

logger = logging.getLogger(__name__)


def origin_allowed(origin: str | None) -> bool:
    """No Origin (a non-browser client) is allowed; a browser's must be on the allow-list."""
    if origin is None:
        return True
    allowed = conf.allowed_origins()
    if "*" in allowed or origin in allowed:
        return True
    host = urlsplit(origin).netloc
    if not host:
        return False
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, [a for a in allowed if "://" not in a])


# Origins already warned about: a misconfigured ALLOWED_HOSTS says so once per
# origin at WARNING (bounded, so a flood of made-up origins cannot grow it).
_warned_origins: set[str] = set()


def log_refused_origin(origin: str | None) -> None:
    if origin is None or origin in _warned_origins or len(_warned_origins) >= 256:
        logger.debug("refused handshake from origin %r", origin)
        return
    _warned_origins.add(origin)
    logger.warning(
        "refused a browser's WebSocket handshake from origin %r: add its host to ALLOWED_HOSTS "
        "or the origin to WEBSOCKET_ALLOWED_ORIGINS",
        origin,
    )
