"""The plain-POST front's own logic (realtime/plain_http.py), on Twisted's in-memory transport.

What a real socket cannot show cheaply: an application that fails or never
answers, the idle timeout on a fake clock, a header with a line break, and the
exact bytes a connection hands to daphne. The end-to-end behaviour is in
tests/integration/test_plain_http_e2e.py.
"""

from __future__ import annotations

import asyncio

import pytest
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from realtime.plain_http import PlainFront


class FakeServer:
    """What the front reads of daphne's ``Server``."""

    http_timeout = None
    proxy_forwarded_address_header = None
    root_path = ""
    server_name = "daphne"
    action_logger = None
    direct_wire = False

    def __init__(self, application) -> None:
        self.application = application
        self.logged: list = []


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def request(body: bytes = b"{}", path: str = "/x/", extra: bytes = b"") -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %d\r\n\r\n%s" % (path.encode(), extra, len(body), body)


def connect(application, timeout: float = 60.0):
    clock = Clock()
    inner = Recorder()
    front = PlainFront(FakeServer(application), lambda: inner, timeout, clock=clock)
    transport = StringTransport()
    front.makeConnection(transport)
    return front, transport, inner, clock


async def settle(transport: StringTransport, predicate, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate(transport.value()):
            await asyncio.sleep(0)


async def echo(scope, receive, send):
    message = await receive()
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["path"].encode() + b" " + message["body"]})


@pytest.mark.asyncio
async def test_a_plain_post_gets_the_applications_answer_with_a_length():
    front, transport, inner, _ = connect(echo)
    front.dataReceived(request(b"hi", "/a%20b/"))
    await settle(transport, lambda out: out.endswith(b"/a b/ hi"))
    head = transport.value().split(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert b"Content-Length: 8" in head and b"Server: daphne" in head
    assert inner.received == b""


@pytest.mark.asyncio
async def test_the_connection_goes_to_daphne_at_the_first_byte_of_the_first_request_that_is_not_plain():
    front, transport, inner, _ = connect(echo)
    get = b"GET /page/ HTTP/1.1\r\nHost: t\r\n\r\n"
    front.dataReceived(request(b"one") + get[:10])
    await settle(transport, lambda out: out.endswith(b"/x/ one"))
    front.dataReceived(get[10:] + request(b"two"))
    # Everything from the GET on, byte for byte, and nothing more is answered here.
    await settle(transport, lambda out: inner.received)
    assert inner.received == get + request(b"two")
    assert transport.value().endswith(b"/x/ one")
    front.dataReceived(b"more")
    assert inner.received.endswith(b"more")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\n",
        request(extra=b"Transfer-Encoding: chunked\r\n"),
        request(extra=b"Expect: 100-continue\r\n"),
        request(extra=b"Upgrade: websocket\r\n"),
        request(extra=b"Content-Length: 2\r\n"),  # two lengths
        request().replace(b"HTTP/1.1", b"HTTP/1.0"),
        request(extra=b"Bad Name: 1\r\n"),
        request(extra=b"X-Vt: a\x0bb\r\n"),  # a byte daphne refuses
        request().replace(b"/x/", b"http://t/x/"),
        request(path="/\xe9/".encode("latin-1").decode("latin-1")),
        b"POST /x/ HTTP/1.1\nHost: t\n\n",
    ],
)
async def test_what_is_not_plain_is_daphnes(first):
    front, transport, inner, _ = connect(echo)
    front.dataReceived(first)
    assert inner.received == first
    assert transport.value() == b""


@pytest.mark.asyncio
async def test_an_application_that_fails_before_answering_gets_daphnes_500_and_the_connection_goes_on():
    calls = []

    async def failing(scope, receive, send):
        calls.append(scope)
        if len(calls) == 1:
            raise RuntimeError("boom")
        await echo(scope, receive, send)

    front, transport, _, _ = connect(failing)
    front.dataReceived(request(b"a"))
    await settle(transport, lambda out: b"500 Internal Server Error" in out and b"</html>" in out)
    front.dataReceived(request(b"b"))
    await settle(transport, lambda out: out.endswith(b"/x/ b"))
    assert not transport.disconnecting


@pytest.mark.asyncio
async def test_an_application_that_returns_without_answering_gets_a_500():
    async def silent(scope, receive, send):
        await receive()

    front, transport, _, _ = connect(silent)
    front.dataReceived(request())
    await settle(transport, lambda out: b"The application sent no response." in out)
    assert transport.value().startswith(b"HTTP/1.1 500 ")


@pytest.mark.asyncio
async def test_an_answer_started_and_abandoned_ends_the_connection():
    async def abandons(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})

    front, transport, _, _ = connect(abandons)
    front.dataReceived(request())
    await settle(transport, lambda out: out.endswith(b"0\r\n\r\n"))
    assert b"Transfer-Encoding: chunked" in transport.value()
    assert transport.disconnecting


@pytest.mark.asyncio
async def test_a_line_break_in_a_response_header_is_made_a_space():
    async def injecting(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"one\r\nSet-Cookie: evil")]})
        await send({"type": "http.response.body", "body": b""})

    front, transport, _, _ = connect(injecting)
    front.dataReceived(request())
    await settle(transport, lambda out: out.endswith(b"\r\n\r\n"))
    assert b"x-a: one Set-Cookie: evil\r\n" in transport.value()
    assert b"\r\nSet-Cookie" not in transport.value()


@pytest.mark.asyncio
async def test_connection_close_closes_after_the_answer():
    front, transport, _, _ = connect(echo)
    front.dataReceived(request(extra=b"Connection: close\r\n"))
    await settle(transport, lambda out: out.endswith(b"/x/ {}"))
    await settle(transport, lambda out: transport.disconnecting)
    assert b"Connection: close\r\n" in transport.value()


@pytest.mark.asyncio
async def test_a_disconnect_reaches_an_application_still_listening():
    seen = []

    async def listens(scope, receive, send):
        await receive()
        seen.append(await receive())

    front, _, _, _ = connect(listens)
    front.dataReceived(request())
    await asyncio.sleep(0)
    front.connectionLost(None)
    async with asyncio.timeout(2):
        while not seen:
            await asyncio.sleep(0)
    assert seen == [{"type": "http.disconnect"}]


def held_until(release: asyncio.Event):
    """``echo``, once ``release`` is set."""

    async def slow(scope, receive, send):
        await release.wait()
        await echo(scope, receive, send)

    return slow


@pytest.mark.asyncio
async def test_an_idle_connection_closes_after_the_timeout_and_a_busy_one_does_not():
    release = asyncio.Event()
    front, transport, _, clock = connect(held_until(release), timeout=60)
    front.dataReceived(request())
    clock.advance(61)  # a request is running: not idle
    assert not transport.disconnecting
    release.set()
    await settle(transport, lambda out: out.endswith(b"/x/ {}") and not front.busy)
    clock.advance(30)
    assert not transport.disconnecting
    clock.advance(31)  # 60 s after the answer, nothing more came
    assert transport.disconnecting


@pytest.mark.asyncio
async def test_pipelined_requests_past_one_head_pause_reading_until_the_answer():
    release = asyncio.Event()
    front, transport, _, _ = connect(held_until(release))
    front.dataReceived(request(b"1"))
    front.dataReceived(request(b"2" * 17000))
    assert transport.producerState == "paused"
    release.set()
    await settle(transport, lambda out: out.endswith(b"2" * 17000))
    assert transport.producerState == "producing"
