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

It reads private attributes of autobahn and Twisted, so it is a capability of
``manage.py runrealtime``: its server (``server.RealtimeServer``) runs
``probe_installed`` at start-up on a real autobahn protocol and Twisted
transport, and offers the fast path (``direct_wire``) only when every attribute
is where this module reads it; each socket's transport is probed again when it
opens. A socket without it (plain daphne, uvicorn, a failed probe) uses the
ASGI ``send``, and an attribute gone at run time makes ``send_text`` return
False for that frame: a frame is never dropped for want of the fast path.
"""

from __future__ import annotations

import functools
import logging

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

    One exception: bytes that came in the same read as the upgrade request
    (frames a client sent before our 101, which RFC 6455 4.1 forbids) stay in
    the channel's ``_dataBuffer`` and never reach the WebSocket; past 16 KB the
    channel also stops the socket's reading, which only its finished request
    would resume. Such a connection is dropped (the client sees 1006,
    reconnects and sends again): its first frames are lost, and it could be
    left deaf to everything else, its close and reset included.
    """
    if getattr(protocol, "state", None) != getattr(protocol, "STATE_OPEN", object()):
        return
    t = getattr(protocol, "transport", None)
    producer = getattr(t, "producer", None)
    if t is not None and producer is not None and type(producer).__name__ == "HTTPChannel":
        t.unregisterProducer()
        if getattr(producer, "_dataBuffer", None):
            producer._dataBuffer = []
            protocol.dropConnection(abort=True)
            return
    request = getattr(protocol, "request", None)
    for name in _HANDSHAKE_LEFTOVERS:
        if name in protocol.__dict__:
            setattr(protocol, name, None)
    if request is not None:  # daphne logs request.path only
        request.headers = {}
        request.params = {}


def held_by_twisted(transport) -> int:
    """Bytes Twisted holds for a socket, written but not yet taken by the kernel.

    The private seam behind WEBSOCKET_SEND_BUFFER_LIMIT: ``FileDescriptor``
    keeps ``dataBuffer`` (sent up to ``offset``) and ``_tempDataBuffer`` (of
    ``_tempDataLen`` bytes) and never refuses a write. Checked for Twisted
    26.10; ``twisted_seam_ok`` probes it before a wire is used.
    """
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def twisted_seam_ok(transport) -> bool:
    try:
        return isinstance(held_by_twisted(transport), int) and isinstance(transport._tempDataBuffer, list)
    except (AttributeError, TypeError):
        return False


# What ``send_text`` and ``close_internal_error`` read of an open autobahn protocol.
PROTOCOL_SEAM = ("state", "STATE_OPEN", "_perMessageCompress", "send_queue", "maxMessagePayloadSize", "sendCloseFrame")


def protocol_seam_missing(protocol) -> list[str]:
    return [name for name in PROTOCOL_SEAM if not hasattr(protocol, name)]


def probe_installed() -> str | None:
    """None when the installed autobahn and Twisted have the fast path's seam, else what is missing.

    On a real autobahn server protocol connected to a real Twisted
    ``FileDescriptor`` (no socket, no reactor): what a socket of daphne has.
    """
    try:
        from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
        from twisted.internet.abstract import FileDescriptor
        from twisted.internet.address import IPv4Address
    except ImportError as exc:
        return f"not installed: {exc.name}"

    class ProbeTransport(FileDescriptor):
        def getPeer(self):
            return IPv4Address("TCP", "127.0.0.1", 0)

        getHost = getPeer

    transport = ProbeTransport()
    if not twisted_seam_ok(transport):
        return "Twisted's FileDescriptor keeps no dataBuffer/offset/_tempDataBuffer/_tempDataLen"
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0)
    protocol = factory.buildProtocol(None)
    if protocol is None:
        return "autobahn's factory built no protocol"
    try:
        # FileDescriptor implements ITransport through zope.interface, which mypy does not read.
        protocol.makeConnection(transport)  # type: ignore[arg-type]
    except Exception as exc:  # an autobahn that connects differently: not the one this was written for
        return f"autobahn's protocol did not connect to a bare transport ({exc!r})"
    missing = protocol_seam_missing(protocol)
    return f"autobahn's protocol has no {', '.join(missing)}" if missing else None


def send_now(transport, sock, data: bytes) -> bool:
    """Send ``data`` with one ``send()`` on a socket Twisted holds nothing for; True when all went.

    The rest, if the kernel took only part, goes to Twisted's own write, which
    sends it when the socket can take it. The caller has checked (through
    ``twisted_seam_ok``) that nothing is queued.
    """
    try:
        sent = sock.send(data)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        # A reset or broken pipe: Twisted's write meets it too and closes as usual.
        transport.write(data)
        return True
    if sent < len(data):
        transport.write(data[sent:])
        return False
    return True


def write(transport, data: bytes) -> None:
    """Twisted's ``transport.write``, without a loop turn when nothing is queued for the socket.

    For a transport that passed ``twisted_seam_ok`` on a server whose probe
    passed; anything unexpected falls back to Twisted's write.
    """
    try:
        sock = transport.socket
        queued = transport.dataBuffer or transport._tempDataBuffer
        usable = sock is not None and transport.connected and not transport.disconnecting
    except AttributeError:
        warn_seam()
        transport.write(data)
        return
    if queued or not usable:
        transport.write(data)
    else:
        send_now(transport, sock, data)


class DirectWire:
    """One daphne socket's fast path, and the bound on what is held for it.

    ``limit`` is WEBSOCKET_SEND_BUFFER_LIMIT: when a write leaves more than that
    held by Twisted for the socket, ``on_backed_up`` runs once (the consumer
    closes with 4500) and later frames are dropped, not buffered: the socket is
    closing and its client resumes with ``since``.
    """

    __slots__ = ("server", "protocol", "limit", "on_backed_up", "backed_up", "entry", "open_state")

    def __init__(self, server, protocol, limit: int = 0, on_backed_up=None) -> None:
        self.server = server
        self.protocol = protocol
        self.limit = limit
        self.on_backed_up = on_backed_up
        self.backed_up = False
        self.entry: dict | None = None  # daphne's record of the socket, read at the first send
        self.open_state = getattr(protocol, "STATE_OPEN", None)

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
            or getattr(server, "direct_wire", False) is not True  # runrealtime's, probed at start-up
            or len(send.args) != 1
            or send.keywords
        ):
            return None
        protocol = send.args[0]
        transport = getattr(protocol, "transport", None)
        if not twisted_seam_ok(transport) or protocol_seam_missing(protocol):
            warn_seam()
            return None
        if getattr(transport, "socket", None) is None:  # not plain TCP (TLS): autobahn's path
            return None
        return cls(server, protocol)

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

    def held(self) -> int:
        """Bytes held for this socket by Twisted (what the kernel did not take)."""
        t = self.protocol.transport
        return held_by_twisted(t) if t is not None else 0

    def check(self) -> bool:
        """After a write by any path: past the limit, say so once. True when backed up."""
        if self.backed_up or self.limit <= 0:
            return self.backed_up
        try:
            held = self.held()
        except (AttributeError, TypeError):  # the seam moved since the probe: the write stands, unbounded
            warn_seam()
            return False
        if held > self.limit:
            self.backed_up = True
            if self.on_backed_up is not None:
                self.on_backed_up()
        return self.backed_up

    def send_text(self, text: str) -> bool:
        """Send ``text`` as one frame; False (nothing sent) when the ASGI path must do it.

        Run once per socket per publication: every check reads an attribute
        directly (no ``getattr`` defaults, no dict copies), and the frame comes
        from ``frame_for``'s one-entry cache when the fan-out already built it.
        """
        if self.backed_up:
            return True  # closing with 4500: nothing more is held for it
        p = self.protocol
        try:  # nothing is written in this block: an attribute gone sends this frame the ASGI way
            conn = self.entry
            if conn is None:
                conn = self.entry = self.server.connections.get(p)
            # daphne forgets a socket only after it marks it disconnected, so the entry read once stays its own.
            if (
                conn is None
                or "disconnected" in conn
                or p.state != self.open_state
                or p._perMessageCompress is not None
                or p.send_queue
            ):
                return False
            t = p.transport
            if not t.connected or t.disconnecting:
                return False
            sock = t.socket  # Twisted deletes it only after ``connected`` is False
            if sock is None:
                return False
            frame = _last[1] if _last[0] is text else frame_for(text)
            if 0 < p.maxMessagePayloadSize < len(frame):
                return False  # at or past autobahn's limit: its own path decides
            queued = t.dataBuffer or t._tempDataBuffer
        except (AttributeError, TypeError):
            warn_seam()
            return False
        if queued:
            t.write(frame)
        elif send_now(t, sock, frame):
            return True
        self.check()
        return True


_warned: list[bool] = []


def warn_seam(reason: str = "a socket's transport or protocol differs from the probe's") -> None:
    """Said once a process: the fast path is off for the sockets it meets."""
    if not _warned:
        _warned.append(True)
        logging.getLogger(__name__).warning(
            "autobahn's or Twisted's private attributes are not where realtime/wire.py looks (%s): "
            "sockets use the ASGI send, and WEBSOCKET_SEND_BUFFER_LIMIT is not enforced",
            reason,
        )
