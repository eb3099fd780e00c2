"""realtime/wire.py's fast path on the installed autobahn and Twisted: its frames, and every way it steps aside.

The socket is a real autobahn server protocol connected to a real Twisted
``FileDescriptor`` over one end of a socketpair; only ``startWriting`` (the
reactor's part) does nothing, so what Twisted buffers stays where the test can
read it. A fallback returns False with nothing written: the caller sends that
frame through daphne's ASGI ``send``. No case drops a frame of an open socket.
"""

from __future__ import annotations

import logging
import socket

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from daphne.server import Server
from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address

from realtime import wire
from realtime.consumers import RealtimeConsumer
from realtime.outbox import Subscription
from realtime.server import RealtimeServer
from realtime.wire import DirectWire, frame_for, probe_installed

TEXT = '{"type":"announcement","channel":"global","seq":1,"message":"x"}'


class Transport(FileDescriptor):
    """Twisted's own write buffering over a real socket, with no reactor to flush it."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.socket = sock
        self.connected = True

    def startWriting(self) -> None:
        pass

    def getPeer(self):
        return IPv4Address("TCP", "127.0.0.1", 1)

    getHost = getPeer


def buffered(t: Transport) -> bytes:
    return bytes(t.dataBuffer[t.offset :]) + b"".join(t._tempDataBuffer)


def open_protocol(sock: socket.socket) -> WebSocketServerProtocol:
    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0)
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(Transport(sock))
    protocol.state = protocol.STATE_OPEN  # as after the handshake
    return protocol


def runrealtime_server(*protocols) -> RealtimeServer:
    server = RealtimeServer(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {p: {} for p in protocols}  # what run() and daphne's onConnect make
    return server


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(2)
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def socket_wire(pair):
    ours, theirs = pair
    protocol = open_protocol(ours)
    return DirectWire(runrealtime_server(protocol), protocol), theirs


def received(theirs: socket.socket) -> bytes:
    theirs.setblocking(False)
    try:
        return theirs.recv(1 << 20)
    except BlockingIOError:
        return b""


# --- the frame builder ----------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frames_are_the_bytes_autobahn_sends(pair, size):
    text = ("é✓" * size)[:size]
    protocol = open_protocol(pair[0])
    protocol.sendMessage(text.encode(), isBinary=False)
    assert frame_for(text) == buffered(protocol.transport)


def test_one_text_is_framed_once_and_an_equal_one_alike():
    text = "".join(["a", "b"])
    assert frame_for(text) is frame_for(text)
    again = "".join(["a", "b"])
    assert again is not text and frame_for(again) == b"\x81\x02ab"


# --- the fast path itself ---------------------------------------------------------


def test_an_idle_open_socket_gets_the_frame_in_one_send(socket_wire):
    w, theirs = socket_wire
    assert w.send_text(TEXT) is True
    assert received(theirs) == frame_for(TEXT) and buffered(w.protocol.transport) == b""


def test_bytes_twisted_already_holds_go_first(socket_wire):
    w, theirs = socket_wire
    w.protocol.transport.write(b"earlier")
    assert w.send_text(TEXT) is True
    assert received(theirs) == b"" and buffered(w.protocol.transport) == b"earlier" + frame_for(TEXT)


def test_what_the_kernel_does_not_take_is_left_to_twisted_and_bounded(pair):
    ours, theirs = pair
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    protocol = open_protocol(ours)
    backed_up = []
    w = DirectWire(runrealtime_server(protocol), protocol, limit=1000, on_backed_up=lambda: backed_up.append(1))
    text = "x" * 500_000
    assert w.send_text(text) is True
    frame, rest = frame_for(text), buffered(protocol.transport)
    assert 0 < len(rest) < len(frame) and frame.endswith(rest)
    assert backed_up == [1] and w.backed_up
    assert w.send_text(TEXT) is True  # closing with 4500: dropped, nothing more held
    assert buffered(protocol.transport) == rest and backed_up == [1]


def test_a_reset_socket_is_left_to_twisted(socket_wire):
    w, theirs = socket_wire
    theirs.close()
    assert w.send_text(TEXT) is True  # Twisted's write meets the error and closes as usual
    assert buffered(w.protocol.transport) == frame_for(TEXT)


# --- every fallback: False, nothing written, the ASGI send takes the frame ---------------


def _forgotten(w):
    w.server.connections.clear()


def _disconnected(w):
    w.server.connections[w.protocol]["disconnected"] = True


def _closing(w):
    w.protocol.state = w.protocol.STATE_CLOSING


def _compressed(w):
    w.protocol._perMessageCompress = object()


def _autobahn_queue(w):
    w.protocol.send_queue.append((b"frame", False))


def _transport_closing(w):
    w.protocol.transport.disconnecting = True


def _not_connected(w):
    w.protocol.transport.connected = False


def _no_socket(w):
    w.protocol.transport.socket = None


def _over_autobahn_limit(w):
    w.protocol.maxMessagePayloadSize = 16


def _renamed_protocol_attribute(w):
    del w.protocol._perMessageCompress


def _renamed_transport_attribute(w):
    del w.protocol.transport._tempDataBuffer


@pytest.mark.parametrize(
    "step_aside",
    [
        _forgotten,
        _disconnected,
        _closing,
        _compressed,
        _autobahn_queue,
        _transport_closing,
        _not_connected,
        _no_socket,
        _over_autobahn_limit,
        _renamed_protocol_attribute,
        _renamed_transport_attribute,
    ],
)
def test_every_fallback_writes_nothing_and_hands_the_frame_back(socket_wire, step_aside):
    w, theirs = socket_wire
    step_aside(w)
    assert w.send_text(TEXT) is False
    assert received(theirs) == b""
    assert b"".join(getattr(w.protocol.transport, "_tempDataBuffer", [])) == b""


def test_a_seam_gone_after_a_write_leaves_the_write_unbounded_not_failed(socket_wire):
    w, _theirs = socket_wire
    w.limit = 10
    del w.protocol.transport._tempDataLen
    assert w.check() is False and not w.backed_up


@pytest.mark.django_db
async def test_a_consumer_whose_wire_fails_sends_through_asgi_and_skips_nothing(socket_wire):
    w, theirs = socket_wire
    del w.protocol._perMessageCompress
    sent = []

    async def base_send(message):
        sent.append(message)

    consumer = RealtimeConsumer()
    consumer.base_send, consumer.closed, consumer._batch = base_send, False, None
    consumer.connection_id, consumer._wire = "c1", w
    consumer.subs = {"global": Subscription()}
    consumer.subs["global"].buffer = None
    for seq in (1, 2):
        pending = consumer.offer("global", seq, f"{TEXT}{seq}")
        assert pending is not None
        await pending
    assert sent == [{"type": "websocket.send", "text": f"{TEXT}{seq}"} for seq in (1, 2)]
    assert consumer.subs["global"].last == 2 and received(theirs) == b""


# --- the capability: runrealtime probes at start-up and offers it -------------------


def test_the_installed_autobahn_and_twisted_pass_the_probe():
    assert probe_installed() is None


def test_a_seam_missing_from_the_installed_libraries_is_named(monkeypatch):
    monkeypatch.setattr(wire, "PROTOCOL_SEAM", (*wire.PROTOCOL_SEAM, "_renamedSendQueue"))
    assert "_renamedSendQueue" in probe_installed()
    monkeypatch.setattr(wire, "twisted_seam_ok", lambda transport: False)
    assert "FileDescriptor" in probe_installed()


def test_runrealtime_offers_the_fast_path_only_when_its_probe_passes(monkeypatch, caplog):
    server = runrealtime_server()
    assert server.direct_wire is False  # not before start-up
    server.offer_direct_wire()
    assert server.direct_wire is True
    monkeypatch.setattr(wire, "_warned", [])
    monkeypatch.setattr("realtime.server.probe_installed", lambda: "autobahn's protocol has no send_queue")
    with caplog.at_level(logging.WARNING, logger="realtime.wire"):
        server.offer_direct_wire()
    assert server.direct_wire is False
    assert "send_queue" in caplog.text and "WEBSOCKET_SEND_BUFFER_LIMIT is not enforced" in caplog.text


def _daphne_send(server, protocol):
    from functools import partial

    return partial(server.handle_reply, protocol)


def test_a_socket_gets_the_wire_only_from_a_server_that_offers_it(pair):
    protocol = open_protocol(pair[0])
    offered = runrealtime_server(protocol)
    offered.direct_wire = True
    assert isinstance(DirectWire.for_send(_daphne_send(offered, protocol)), DirectWire)

    not_probed = runrealtime_server(protocol)
    assert DirectWire.for_send(_daphne_send(not_probed, protocol)) is None

    plain = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    plain.connections = {protocol: {}}
    assert DirectWire.for_send(_daphne_send(plain, protocol)) is None

    async def other_send(message):
        pass

    assert DirectWire.for_send(other_send) is None


@pytest.mark.parametrize("step_aside", [_renamed_protocol_attribute, _renamed_transport_attribute, _no_socket])
def test_a_socket_unlike_the_probe_gets_no_wire(pair, step_aside, monkeypatch):
    monkeypatch.setattr(wire, "_warned", [True])  # said once a process; not the point here
    protocol = open_protocol(pair[0])
    server = runrealtime_server(protocol)
    server.direct_wire = True
    step_aside(DirectWire(server, protocol))
    assert DirectWire.for_send(_daphne_send(server, protocol)) is None
