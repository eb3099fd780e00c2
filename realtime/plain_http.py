"""Plain POSTs read and answered without Twisted's HTTP stack: the way in for publications.

Publishing is a stream of small, well-formed POSTs on keep-alive connections
(``POST /api/realtime/broadcast/``, ``POST /api/events/``). For each one,
Twisted's ``HTTPChannel`` and daphne's ``WebRequest`` cost ~0.4 ms of the event
loop's CPU (line parsing, a ``Headers`` object, timers reset per read, a writer
registered and removed for the answer, an access line formatted for nobody),
about a third of the whole request (bench/README.md). Under ``manage.py
runrealtime`` each new HTTP connection starts here. While its requests are the
plain case this front reads them itself, calls the same ASGI application with
the scope daphne would build, and writes the answer. At the first request that
is not plain, it hands the connection to daphne's own protocol, at that
request's first byte, with every byte it has not answered; from then on it
only passes data through, and a WebSocket handshake never meets it at all
(daphne moves the socket to the WebSocket protocol).

Plain means, and anything else goes to daphne, which answers exactly as before:

- ``POST <target starting with /> HTTP/1.1`` with ASCII path and query;
- ``name: value`` header lines, each name one daphne accepts and each value free
  of the bytes daphne refuses; one ``Content-Length`` of at most
  DATA_UPLOAD_MAX_MEMORY_SIZE bytes; no ``Transfer-Encoding``, ``Upgrade`` or
  ``Expect``; the header block at most 16 KB (Twisted's own bound);
- plain TCP (not TLS), and no ``--http-timeout``.

The answer is framed as Twisted frames it (``http1.response_head``) (``Content-Length`` when the
application gives the body at once, chunked otherwise, ``Server: daphne``
unless set), idle keep-alive connections close after the HTTP factory's
timeout (60 s, as Twisted's), proxy headers (``--proxy-headers``) and
``Daphne-Root-Path`` are read as daphne reads them, and the access log gets the
same line. An application that fails before it answers gets daphne's 500 page.
``REALTIME_PLAIN_HTTP`` false leaves every request to daphne.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import unquote

from daphne.http_protocol import WebRequest
from daphne.utils import parse_x_forwarded_for
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.web.http_headers import Headers

from . import counters, wire
from .http1 import END_OF_HEAD, MAX_HEAD, PlainRequest, body_limit, response_head

logger = logging.getLogger(__name__)


class PlainFront(Protocol):
    """One HTTP connection: plain requests served here, the rest handed to daphne's protocol."""

    transport: Any  # a Twisted TCP connection (its socket and buffers are read through wire.py)

    def __init__(self, server, build_daphne, timeout: float, clock=None) -> None:
        self.server = server
        self.clock = clock  # Twisted's reactor unless given (tests give a Clock)
        self.build_daphne = build_daphne
        self.timeout = timeout
        self.inner = None  # daphne's protocol, once handed over
        self.buffer = b""
        self.busy = False  # a request's application is running
        self.gone = False
        self.paused = False
        self.direct = False
        self.last_active = 0.0
        self.idle_call = None
        self.client: list | None = None
        self.server_addr: list | None = None
        # Per request (one at a time):
        self.request: PlainRequest | None = None
        self.started = False
        self.status = 0
        self.response_headers: list = []
        self.head_sent = False
        self.chunked = False
        self.no_body = False
        self.finished = False
        self.sent = 0
        self.request_start = 0.0
        self.disconnect: asyncio.Future | None = None

    # --- Twisted's protocol ---------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        peer, host = transport.getPeer(), transport.getHost()
        if hasattr(peer, "host") and hasattr(peer, "port"):
            self.client = [str(peer.host), peer.port]
            self.server_addr = [str(host.host), host.port]
        if ISSLTransport.providedBy(transport) or self.server.http_timeout:
            self.hand_over()  # TLS or an application timeout: daphne's own path
            return
        # Answers go out in one send() when Twisted holds nothing for the socket (wire.py's probed seam).
        self.direct = bool(getattr(self.server, "direct_wire", False)) and wire.twisted_seam_ok(transport)
        if self.clock is None:
            from twisted.internet import reactor  # here: importing it earlier would install the default one

            self.clock = reactor
        self.last_active = self.clock.seconds()
        if self.timeout:
            self.idle_call = self.clock.callLater(self.timeout, self.check_idle)

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self.buffer += data
        if not self.busy:
            self.next_request()
        elif len(self.buffer) > MAX_HEAD and not self.paused:
            self.paused = True  # pipelined past one head while a request runs: wait, as Twisted does
            self.transport.pauseProducing()

    def connectionLost(self, reason=None) -> None:
        self.gone = True
        if self.idle_call is not None and self.idle_call.active():
            self.idle_call.cancel()
        if self.inner is not None:
            self.inner.connectionLost(reason)
            return
        if self.disconnect is not None and not self.disconnect.done():
            self.disconnect.set_result({"type": "http.disconnect"})

    # --- reading --------------------------------------------------------------

    def next_request(self) -> None:
        buffer = self.buffer
        end = buffer.find(END_OF_HEAD)
        if end < 0:
            # Not a POST, a head past the bound, or lines ended another way: daphne's.
            if (
                not (buffer.startswith(b"POST ") or b"POST ".startswith(buffer))
                or len(buffer) > MAX_HEAD
                or b"\n\n" in buffer
                or b"\n\r\n" in buffer
            ):
                self.hand_over()
            return
        request = PlainRequest.parse(buffer[:end], self.server.root_path, body_limit()) if end <= MAX_HEAD else None
        if request is None:
            self.hand_over()
            return
        start = end + 4
        stop = start + request.length
        if len(buffer) < stop:
            return
        self.buffer = buffer[stop:]
        self.serve(request, buffer[start:stop])

    def hand_over(self) -> None:
        """From here on the connection is daphne's, starting at the first byte not answered."""
        if self.idle_call is not None and self.idle_call.active():
            self.idle_call.cancel()
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()
        counters.PLAIN_HTTP_HANDOVERS.inc()
        inner = self.inner = self.build_daphne()
        inner.makeConnection(self.transport)
        data, self.buffer = self.buffer, b""
        if data:
            inner.dataReceived(data)

    def check_idle(self) -> None:
        self.idle_call = None
        if self.gone or self.inner is not None:
            return
        idle = self.clock.seconds() - self.last_active
        if self.busy or idle < self.timeout:
            self.idle_call = self.clock.callLater(max(self.timeout - idle, 1.0), self.check_idle)
            return
        self.transport.loseConnection()

    # --- the application ------------------------------------------------------

    def serve(self, request: PlainRequest, body: bytes) -> None:
        counters.PLAIN_HTTP_REQUESTS.inc()
        self.busy = True
        self.request = request
        self.started = self.head_sent = self.chunked = self.no_body = self.finished = False
        self.sent = 0
        self.response_headers = []
        self.request_start = time.time()
        self.disconnect = None
        client, scheme = self.client, "http"
        if self.server.proxy_forwarded_address_header:
            raw: dict[bytes, list[bytes]] = {}
            for name, value in request.headers:
                raw.setdefault(name, []).append(value)
            client, scheme = parse_x_forwarded_for(
                Headers(raw),
                self.server.proxy_forwarded_address_header,
                self.server.proxy_forwarded_port_header,
                self.server.proxy_forwarded_proto_header,
                client,
                scheme,
            )
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "path": unquote(request.path.decode("ascii")),
            "raw_path": request.path,
            "root_path": request.root_path,
            "scheme": scheme,
            "query_string": request.query,
            "headers": request.headers,
            "client": client,
            "server": self.server_addr,
        }
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        loop = asyncio.get_event_loop()

        async def receive():
            if pending:
                return pending.pop()
            if self.gone:
                return {"type": "http.disconnect"}
            if self.disconnect is None:
                self.disconnect = loop.create_future()
            return await self.disconnect

        async def send(message):
            self.reply(message)

        task = asyncio.ensure_future(self.server.application(scope=scope, receive=receive, send=send), loop=loop)
        task.add_done_callback(self.application_done)

    def reply(self, message) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self.started:
                raise ValueError("HTTP response has already been started")
            if "status" not in message:
                raise ValueError("Specifying a status code is required for a Response message.")
            self.started = True
            self.status = int(message["status"])
            self.response_headers = list(message.get("headers", ()))
        elif kind == "http.response.body":
            if not self.started:
                raise ValueError(f"HTTP response has not yet been started but got {kind}")
            if self.finished:
                return
            more = bool(message.get("more_body", False))
            self.write_body(message.get("body", b""), more)
            if not more:
                self.finish()
        else:
            raise ValueError(f"Cannot handle message type {kind}!")

    def write_body(self, body: bytes, more: bool) -> None:
        out = []
        if not self.head_sent:
            self.head_sent = True
            out.append(self.head(None if more else len(body)))
        if body and not self.no_body:
            self.sent += len(body)
            out.append(b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body)
        if not more and self.chunked:
            out.append(b"0\r\n\r\n")
        if out and not self.gone:
            self.send_bytes(b"".join(out))

    def send_bytes(self, data: bytes) -> None:
        if self.direct:
            wire.write(self.transport, data)
        else:
            self.transport.write(data)

    def head(self, length: int | None) -> bytes:
        close = self.request is not None and self.request.close
        head, self.chunked, self.no_body = response_head(
            self.status, self.response_headers, self.server.server_name, length, close
        )
        return head

    def finish(self) -> None:
        self.finished = True
        self.last_active = self.clock.seconds()
        request = self.request
        if self.server.action_logger and request is not None:
            self.server.log_action(
                "http",
                "complete",
                {
                    "path": request.uri.decode("ascii", "replace"),
                    "status": self.status,
                    "method": "POST",
                    "client": f"{self.client[0]}:{self.client[1]}" if self.client else None,
                    "time_taken": time.time() - self.request_start,
                    "size": self.sent,
                },
            )

    def application_done(self, task: asyncio.Future) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            logger.error("Exception inside application: %s", error, exc_info=error)
        keep_alive = self.request is not None and not self.request.close
        if not self.finished and not self.gone:
            if not self.started:
                self.error_page(error)
            else:
                # Started and never ended: nothing after it on this connection could be framed.
                if self.head_sent and self.chunked:
                    self.send_bytes(b"0\r\n\r\n")
                self.finished = True
                keep_alive = False
        self.busy = False
        self.request = None
        if self.gone:
            return
        if not keep_alive:
            self.transport.loseConnection()
            return
        if self.paused:
            self.paused = False
            self.transport.resumeProducing()
        if self.buffer:
            self.next_request()

    def error_page(self, error: BaseException | None) -> None:
        body = WebRequest.error_template % {
            "title": "500 Internal Server Error",
            "body": "Exception inside application." if error is not None else "The application sent no response.",
        }
        self.reply(
            {"type": "http.response.start", "status": 500, "headers": [(b"Content-Type", b"text/html; charset=utf-8")]}
        )
        self.reply({"type": "http.response.body", "body": body.encode("utf8")})
