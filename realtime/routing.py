"""Routing of the ASGI connections: ``/ws/<client_id>/`` to the consumer, ``/sse/`` to
the event stream (an async ASGI app, not a Django view: no thread per stream), HTTP to Django.

Channels' ``ProtocolTypeRouter`` and ``URLRouter`` do the same job with an
``async def`` each, and ``as_asgi()`` adds a third: each keeps a coroutine frame
(and ``URLRouter`` a copy of the scope) alive for the whole life of every socket,
~1.5 KB a connection in bench/README.md. These are plain functions that return
the consumer's coroutine, so nothing of theirs stays behind.
"""

from __future__ import annotations

import re

from channels.routing import URLRouter

from .consumers import RealtimeConsumer
from .sse import sse_application

# The client id is validated by the consumer (a 403 for anything outside the
# contract), so the route takes any segment and the trailing slash is optional.
WEBSOCKET_PATH = re.compile(r"^/ws/(?P<client_id>[^/]*)/?$")
SSE_PATHS = ("/sse/", "/sse")

# Other WebSocket endpoints of the project, as Channels routes
# (``re_path(r"^chat/$", ChatConsumer.as_asgi())``): tried when the path is not /ws/<client_id>/.
websocket_urlpatterns: list = []


def websocket_application(scope, receive, send):
    match = WEBSOCKET_PATH.match(scope["path"])
    if match is None:
        if websocket_urlpatterns:
            return URLRouter(websocket_urlpatterns)(scope, receive, send)
        return _refuse(receive, send)
    scope = dict(scope, url_route={"args": (), "kwargs": match.groupdict()})
    return RealtimeConsumer()(scope, receive, send)


websocket_application._asgi_single_callable = True  # type: ignore[attr-defined]


async def _refuse(receive, send) -> None:
    """Any other WebSocket path: the handshake is refused (HTTP 403)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


def protocol_router(http_application):
    """``ProtocolTypeRouter({"http": ..., "websocket": ...})`` as a plain function."""

    def application(scope, receive, send):
        if scope["type"] == "websocket":
            return websocket_application(scope, receive, send)
        if scope["type"] == "http":
            if scope.get("path") in SSE_PATHS:
                return sse_application(scope, receive, send)
            return http_application(scope, receive, send)
        raise ValueError(f"no application for ASGI scope type {scope['type']!r}")

    # Plain functions look like ASGI 2 to asgiref (daphne, Channels' test
    # communicators); uvicorn needs ``--interface asgi3``.
    application._asgi_single_callable = True
    return application
