"""An SSE stream's writes straight into daphne's HTTP response, and what is still unsent.

daphne's ASGI ``send`` is a coroutine that ends in ``WebRequest.handle_reply``,
which calls Twisted's ``Request.write`` (a chunk of a chunked response); the
coroutine adds nothing but a check that the request is still open. The hub
offers each publication to every stream synchronously, so a stream writes
through ``Request.write`` itself: no coroutine per stream per publication.

Twisted's write buffer is unbounded (a client that stops reading makes the
server hold everything written to it), so ``buffered`` reads how many bytes the socket
still holds for the client: the stream is closed past WEBSOCKET_SEND_BUFFER_LIMIT,
and ``abort`` drops the connection with what it holds. Checked for daphne 4.2.3
and Twisted 26.10.0; under any other server ``for_send`` returns None and the
stream uses the ASGI ``send`` (unbounded: the server's own buffering decides).
"""

from __future__ import annotations

import functools
import re

# daphne's access log prints an HTTP request's whole URI, query string included.
_TOKEN_PARAM = re.compile(rb"(?i)(token=)[^&]*")


# The last bytes framed as a chunk, and the chunk: a fan-out writes one event to many streams.
_last_chunk: list = [None, b""]


def _chunk(data: bytes) -> bytes:
    """One chunk of a chunked HTTP/1.1 body (RFC 9112 section 7.1)."""
    if data is _last_chunk[0]:
        return _last_chunk[1]
    out = b"%x\r\n%b\r\n" % (len(data), data)
    _last_chunk[0], _last_chunk[1] = data, out
    return out


class HTTPWire:
    __slots__ = ("request",)

    def __init__(self, request) -> None:
        self.request = request

    @classmethod
    def for_send(cls, send) -> HTTPWire | None:
        """The ``WebRequest`` behind daphne's ``partial(Server.handle_reply, request)``, else None."""
        try:
            from daphne.http_protocol import WebRequest
            from daphne.server import Server
        except ImportError:
            return None
        func = getattr(send, "func", None)
        if (
            not isinstance(send, functools.partial)
            or getattr(func, "__name__", "") != "handle_reply"
            or not isinstance(getattr(func, "__self__", None), Server)
            or len(send.args) != 1
            or not isinstance(send.args[0], WebRequest)
        ):
            return None
        request = send.args[0]
        # A stream's URI carries ``?token=``: what daphne logs when the response ends has it redacted.
        request.uri = _TOKEN_PARAM.sub(rb"\1[redacted]", request.uri or b"")
        return cls(request)

    def write(self, data: bytes) -> bool:
        """Write a chunk of the started response; False when the request is over.

        Like ``Request.write``, except that when Twisted holds nothing for the
        socket the bytes go to the kernel with one ``send()`` at once: Twisted's
        own write waits for the next loop turn, so a burst of publications (the
        poller hands over many in one turn) would pile up in its buffer and
        pass the bound for every reader, fast or slow.
        """
        request = self.request
        if request.finished or request.channel is None or not request._response_started:
            return False
        if request._disconnected:
            return True  # the disconnect reaches the stream through ``receive``
        t = self._transport()
        sock = getattr(t, "socket", None)
        if not request.startedWriting or sock is None or not data:
            request.write(data)  # the first write sends the headers; TLS and others go Twisted's way
            return True
        request.sentLength += len(data)
        out = _chunk(data) if request.chunked else data
        if t.dataBuffer or t._tempDataBuffer or t.disconnecting or not getattr(t, "connected", False):
            t.write(out)
            return True
        try:
            sent = sock.send(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            t.write(out)  # a reset: Twisted's write meets it too and closes as usual
            return True
        if sent < len(out):
            t.write(out[sent:])
        return True

    def _transport(self):
        channel = self.request.channel
        return getattr(channel, "transport", None) if channel is not None else None

    def buffered(self) -> int:
        """Bytes written to the socket that the client has not taken yet (beyond the kernel's buffer)."""
        t = self._transport()
        if t is None:
            return 0
        data = getattr(t, "dataBuffer", b"")
        return len(data) - getattr(t, "offset", 0) + getattr(t, "_tempDataLen", 0)

    def abort(self) -> None:
        t = self._transport()
        if t is not None and hasattr(t, "abortConnection"):
            t.abortConnection()
