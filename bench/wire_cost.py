"""``python -m bench.wire_cost``: the fan-out's Python per socket, against a bare ``send()``.

In-process, no server: 1,000 socketpairs, each with a real autobahn server
protocol on a real Twisted ``FileDescriptor`` (as daphne's sockets have), the
real consumer's ``offer`` and the real ``DirectWire``. Each round pushes one
publication to every socket both ways, the consumers' way and a bare
``sock.send(frame)``, and drains the readers between rounds; the figure is CPU
time per socket (``time.process_time``). The difference is what the fan-out's
checks cost in Python; the ``send()`` itself is the same in both.
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--publications", type=int, default=300)
    opts = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")
    import django

    django.setup()
    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from daphne.server import Server
    from twisted.internet.abstract import FileDescriptor
    from twisted.internet.address import IPv4Address

    from realtime.consumers import RealtimeConsumer
    from realtime.outbox import Subscription
    from realtime.wire import DirectWire, frame_for

    class Transport(FileDescriptor):
        def __init__(self, sock: socket.socket) -> None:
            super().__init__()
            self.socket = sock
            self.connected = True

        def getPeer(self):
            return IPv4Address("TCP", "127.0.0.1", 1)

        getHost = getPeer

    factory = WebSocketServerFactory()
    factory.protocol = WebSocketServerProtocol
    factory.setProtocolOptions(openHandshakeTimeout=0)
    pairs = [socket.socketpair() for _ in range(opts.sockets)]
    protocols = []
    for ours, theirs in pairs:
        ours.setblocking(False)
        theirs.setblocking(False)
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(Transport(ours))
        protocol.state = protocol.STATE_OPEN
        protocols.append(protocol)
    server = Server(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {p: {} for p in protocols}
    consumers = []
    for protocol in protocols:
        consumer = RealtimeConsumer()
        consumer.closed, consumer._batch, consumer.connection_id = False, None, "bench"
        consumer._wire = DirectWire(server, protocol)
        consumer.subs = {"global": Subscription()}
        consumer.subs["global"].buffer = None
        consumers.append(consumer)
    text = '{"type":"note","channel":"global","seq":1,"ts":"2026-12-02T09:51:15.896Z","text":"' + "x" * 60 + '"}'
    seqs = itertools.count(1)

    def through_consumers() -> None:
        seq = next(seqs)
        for consumer in list(consumers):
            consumer.offer("global", seq, text)

    def bare() -> None:
        frame = frame_for(text)
        for protocol in protocols:
            protocol.transport.socket.send(frame)

    def drain() -> int:
        got = 0
        for _, theirs in pairs:
            try:
                while chunk := theirs.recv(1 << 16):
                    got += len(chunk)
            except BlockingIOError:
                pass
        return got

    expected = len(frame_for(text)) * opts.sockets

    results: dict[str, list[float]] = {"consumers": [], "bare": []}
    for name, push in (("consumers", through_consumers), ("bare", bare)) * 2:
        spent = 0.0
        for _ in range(opts.publications):
            start = time.process_time()
            push()
            spent += time.process_time() - start
            got = drain()
            if got != expected:  # a wire that declined would measure nothing
                raise SystemExit(f"{name}: {got} bytes reached the sockets, not {expected}")
        results[name].append(spent / opts.publications / opts.sockets * 1e6)
    for name, figures in results.items():
        print(f"{name}: {' / '.join(f'{us:.3f}' for us in figures)} us of CPU per socket per publication")
    over = [c - b for c, b in zip(results["consumers"], results["bare"], strict=True)]
    print(f"the fan-out's Python over a bare send(): {' / '.join(f'{us:.3f}' for us in over)} us per socket")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
