"""daphne's ``Server``, tuned for many long-lived sockets: what ``manage.py runrealtime`` runs.

Six changes; all but the second and third are measured in bench/README.md:

- Each WebSocket gets an ``InputQueue`` instead of an ``asyncio.Queue``: daphne
  makes one per socket to feed the application, and ``asyncio.Queue`` carries
  four deques and an Event (~3 KB) for what is, for a consumer, one reader
  waiting on one message at a time. HTTP requests keep ``asyncio.Queue``.
- permessage-deflate is accepted when ``WEBSOCKET_COMPRESSION`` is on: daphne
  never sets autobahn's ``perMessageCompressionAccept``, so it declines every
  client's offer.
- A close's reason text goes out in the close frame (daphne drops it), so a
  client sees "4503 server at capacity", not a bare code.
- Twisted does not parse a POST's form body for daphne: daphne hands the raw
  body to the application (Django parses its own forms), and Twisted's parse
  of the Content-Type header alone (through ``email.message``) was an eighth
  of the server CPU of a small JSON POST.
- The fast path of ``wire.py`` (publications written straight to the socket,
  and WEBSOCKET_SEND_BUFFER_LIMIT) is offered to the consumers
  (``direct_wire``) once ``wire.probe_installed`` finds at start-up that the
  installed autobahn and Twisted keep what it reads where it reads it.
- Each HTTP connection starts in ``plain_http.PlainFront``, which reads and
  answers plain keep-alive POSTs itself and hands everything else to daphne's
  protocol at a request boundary (``REALTIME_PLAIN_HTTP``).

Plain ``daphne dexter.asgi:application`` serves the same application, with
daphne's defaults and without the fast paths: every request goes through
Twisted's HTTP stack, every frame through daphne's ASGI ``send``, and what is
held for a slow socket is not bounded.
"""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial

from daphne.http_protocol import WebRequest
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol

from . import conf
from .plain_http import PlainFront
from .startup import log_serving
from .wire import probe_installed, warn_seam


class InputQueue:
    """The ``receive`` side of one socket: ``put_nowait`` from daphne, ``get`` by one reader."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque | None = None  # made when a message waits for its reader
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._waiter = None
            waiter.set_result(item)
            return
        if self._items is None:
            self._items = deque()
        self._items.append(item)

    async def get(self):
        if self._items:
            return self._items.popleft()
        if self._waiter is not None:
            raise RuntimeError("InputQueue has one reader at a time")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await waiter
        except asyncio.CancelledError:
            # Handed over just before the cancel: keep it for a next reader.
            if waiter.done() and not waiter.cancelled():
                self._items = self._items or deque()
                self._items.appendleft(waiter.result())
            raise
        finally:
            if self._waiter is waiter:
                self._waiter = None


def accept_deflate(offers):
    """autobahn's hook: accept the client's first permessage-deflate offer as made."""
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class ReasonedWebSocketProtocol(WebSocketProtocol):
    """daphne 4.2.3 drops the ASGI close's ``reason``: send it in the close frame."""

    def handle_reply(self, message):
        if message.get("type") == "websocket.close" and message.get("reason") and self.state == self.STATE_OPEN:
            code = message.get("code") or 1000
            self.sendClose(code=code, reason=str(message["reason"])[:120])
            return
        super().handle_reply(message)


class FormlessWebRequest(WebRequest):
    """daphne's request without Twisted's parse of form bodies into ``args``, which daphne never reads."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parsePOSTFormSubmission = False


class RealtimeServer(Server):
    # The fast path of realtime/wire.py, offered to the consumers once probed.
    direct_wire = False

    def run(self):
        self.offer_direct_wire()
        super().run()

    def offer_direct_wire(self) -> None:
        """At start-up, before any socket: the fast path only if its seam is where wire.py reads it."""
        missing = probe_installed()
        self.direct_wire = missing is None
        if missing is not None:
            warn_seam(missing)

    def listen_success(self, port):
        if not getattr(self.http_factory, "_formless", False):
            # run() builds http_factory before listening; its buildProtocol sets daphne's request class.
            build = self.http_factory.buildProtocol

            def build_formless(addr):
                protocol = build(addr)
                if protocol is not None:
                    protocol.requestFactory = FormlessWebRequest
                return protocol

            plain = conf.get("REALTIME_PLAIN_HTTP")
            timeout = getattr(self.http_factory, "timeOut", None) or 0

            def build_front(addr):
                if not plain:
                    return build_formless(addr)
                return PlainFront(self, partial(build_formless, addr), timeout)

            self.http_factory.buildProtocol = build_front
            self.http_factory._formless = True
        # Built in run() before listening; every connection is made after this.
        self.ws_factory.protocol = ReasonedWebSocketProtocol
        if conf.get("WEBSOCKET_COMPRESSION"):
            # run() builds ws_factory and sets its options before listening;
            # autobahn copies factory options onto each protocol when a
            # connection is made, so setting this here covers every connection.
            self.ws_factory.setProtocolOptions(perMessageCompressionAccept=accept_deflate)
        super().listen_success(port)
        address = port.getHost() if hasattr(port, "getHost") else None
        if hasattr(address, "host") and hasattr(address, "port"):
            log_serving(address.host, address.port)

    def create_application(self, protocol, scope):
        if scope.get("type") != "websocket":
            return super().create_application(protocol, scope)
        # daphne 4.2.3's create_application, with the lean queue.
        assert "application_instance" not in self.connections[protocol]
        input_queue = InputQueue()
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(
            scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            application_instance, loop=asyncio.get_event_loop()
        )
        return input_queue
