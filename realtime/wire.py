"""The fan-out fast path: a publication's frame written straight to daphne's socket.

Through ASGI every push costs daphne's ``handle_reply``, autobahn's framing and
Twisted's buffered write, which registers the socket for writing, waits a loop
turn, sends, and unregisters it again (two ``epoll_ctl`` calls per message):
together ~80% of the server's CPU per delivered message in bench/README.md.
Server-to-client frames are unmasked, so one publication is the same bytes for
every recipient: ``frame_for`` builds them once (the hub hands the same ``str``
to every socket), and ``DirectWire.send_text`` sends them with one ``send()``
when nothing is queued for the socket, handing any rest to Twisted's own write.

The rule: it only ever takes a frame that autobahn would have sent unchanged
(daphne over plain TCP, socket open, no compression, nothing queued, under the
size limit); in every other case ``send_text`` returns False and the caller uses
the ASGI ``send`` as before. Order is kept: anything already buffered by Twisted
goes first.
"""

from __future__ import annotations

import functools

try:
    from autobahn.exception import Disconnected
except ImportError:  # served without daphne/autobahn
    SEND_GONE: tuple[type[BaseException], ...] = ()
else:
    # What daphne's ``send`` raises when the client's close frame came in first.
    SEND_GONE = (Disconnected,)

# The last text framed, and its frame: one entry, as a fan-out frames one text.
_last: list = [None, b""]


def frame_for(text: str) -> bytes:
    """An unmasked, unfragmented text frame (RFC 6455 section 5.2) of ``text``."""
    if text is _last[0]:
        return _last[1]
    payload = text.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = b"\x81\x7e" + n.to_bytes(2, "big")
    else:
        head = b"\x81\x7f" + n.to_bytes(8, "big")
    frame = head + payload
    _last[0], _last[1] = text, frame
    return frame


# What autobahn's server handshake leaves on the protocol and never reads again.
_HANDSHAKE_LEFTOVERS = (
    "http_request_data",
    "http_request_uri",
    "http_request_path",
    "http_request_params",
    "http_response_data",
    "http_headers",
)


def release_handshake(protocol) -> None:
    """Free what the upgrade left behind on an open daphne socket: ~4 KB each.

    daphne's HTTP-to-WebSocket upgrade leaves Twisted's ``HTTPChannel`` registered
    as the socket's producer, and with it the whole upgrade request (its
    headers, its URI with the token) for the life of the socket. After the
    upgrade that producer does nothing: its request never finishes, so its
    pause and stop never reach the socket. Autobahn likewise keeps the raw
    handshake, its parsed headers and query. None of it is read after the
    handshake (checked for daphne 4.2.3, autobahn 26.10.2, Twisted 26.10.0).
    """
    if getattr(protocol, "state", None) != getattr(protocol, "STATE_OPEN", object()):
        return
    t = getattr(protocol, "transport", None)
    producer = getattr(t, "producer", None)
    if producer is not None and type(producer).__name__ == "HTTPChannel":
        t.unregisterProducer()
    request = getattr(protocol, "request", None)
    for name in _HANDSHAKE_LEFTOVERS:
        if name in protocol.__dict__:
            setattr(protocol, name, None)
    if request is not None:  # daphne logs request.path only
        request.headers = {}
        request.params = {}


class DirectWire:
    __slots__ = ("server", "protocol")

    def __init__(self, server, protocol) -> None:
        self.server = server
        self.protocol = protocol

    @classmethod
    def for_send(cls, send) -> DirectWire | None:
        """The wire behind daphne's ASGI ``send`` (``partial(Server.handle_reply, protocol)``), else None."""
        try:
            from daphne.server import Server
        except ImportError:  # served by something else
            return None
        func = getattr(send, "func", None)
        server = getattr(func, "__self__", None)
        if (
            not isinstance(send, functools.partial)
            or getattr(func, "__name__", "") != "handle_reply"
            or not isinstance(server, Server)
            or len(send.args) != 1
            or send.keywords
        ):
            return None
        return cls(server, send.args[0])

    def release_handshake(self) -> None:
        release_handshake(self.protocol)

    def gone(self) -> bool:
        """daphne has seen this socket's TCP connection end (or forgotten it)."""
        conn = self.server.connections.get(self.protocol)
        return conn is None or bool(conn.get("disconnected"))

    def close_internal_error(self) -> None:
        """Close with 1011, as daphne does when an application crashes: autobahn's
        public ``sendClose`` refuses every code but 1000 and 3000-4999."""
        p = self.protocol
        if p.state == p.STATE_OPEN:
            p.sendCloseFrame(code=1011, isReply=False)

    def send_text(self, text: str) -> bool:
        """Send ``text`` as one frame; False (nothing sent) when the ASGI path must do it."""
        p = self.protocol
        conn = self.server.connections.get(p)
        if (
            conn is None
            or conn.get("disconnected")
            or p.state != p.STATE_OPEN
            or p._perMessageCompress is not None
            or p.send_queue
        ):
            return False
        t = p.transport
        sock = getattr(t, "socket", None)
        if sock is None or not getattr(t, "connected", False) or t.disconnecting:
            return False
        frame = frame_for(text)
        if 0 < p.maxMessagePayloadSize < len(frame):
            return False  # at or past autobahn's limit: its own path decides
        if t.dataBuffer or t._tempDataBuffer:
            t.write(frame)
            return True
        try:
            sent = sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # A reset or broken pipe: Twisted's write meets it too and closes as usual.
            t.write(frame)
            return True
        if sent < len(frame):
            t.write(frame[sent:])
        return True
