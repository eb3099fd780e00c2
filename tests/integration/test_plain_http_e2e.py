"""Plain POSTs through the real server's own front (realtime/plain_http.py), and everything else through daphne.

Raw sockets, so the exact bytes on the wire are the test's: keep-alive,
pipelining, requests split across reads, a connection handed to daphne at a
request boundary, and requests that are not plain. The same requests against a
server with REALTIME_PLAIN_HTTP=false (daphne for everything) must get the
same answers.
"""

from __future__ import annotations

import json
import shutil
import socket
import urllib.request

import pytest

from .conftest import server_env

TIMEOUT = 10


class Wire:
    """One client connection; reads HTTP/1.1 answers framed either way."""

    def __init__(self, server) -> None:
        host, port = server.http.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        status_line = self.file.readline()
        assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), status_line
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self.file.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (100, 204, 304):
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self.file.read(int(headers["content-length"]))
        assert headers.get("transfer-encoding") == "chunked", headers
        body = b""
        while True:
            size = int(self.file.readline().strip(), 16)
            chunk = self.file.read(size + 2)[:size]
            if size == 0:
                return status, headers, body
            body += chunk

    def closed(self) -> bool:
        return self.file.read(1) == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def post(path: str, body: bytes, token: str | None = None, extra: str = "") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{auth}{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def broadcast(token: str, text: str = "hello") -> bytes:
    return post(
        "/api/realtime/broadcast/",
        json.dumps({"channel": "global", "message": {"type": "note", "text": text}}).encode(),
        token,
    )


@pytest.fixture
def admin_token(server):
    return server.token("admin")


def test_keep_alive_posts_are_answered_in_order_however_the_bytes_arrive(server, admin_token):
    wire = Wire(server)
    seqs = []
    try:
        for i in range(5):
            wire.send(broadcast(admin_token, f"one-{i}"))
            status, headers, body = wire.answer()
            assert status == 202, body
            assert json.loads(body)["text"] == f"one-{i}"
            assert headers["server"] == "daphne"
            assert headers["content-type"] == "application/json"
            seqs.append(json.loads(body)["seq"])
        # Two requests in one write, then one byte at a time.
        wire.send(broadcast(admin_token, "piped-a") + broadcast(admin_token, "piped-b"))
        for text in ("piped-a", "piped-b"):
            status, _, body = wire.answer()
            assert status == 202 and json.loads(body)["text"] == text
            seqs.append(json.loads(body)["seq"])
        for byte in broadcast(admin_token, "trickled"):
            wire.send(bytes([byte]))
        status, _, body = wire.answer()
        assert status == 202 and json.loads(body)["text"] == "trickled"
        seqs.append(json.loads(body)["seq"])
        assert seqs == list(range(seqs[0], seqs[0] + 8))
    finally:
        wire.close()


def counted(server, token: str) -> dict[str, float]:
    """The front's counters, scraped (a GET: daphne's, on a connection of its own)."""
    req = urllib.request.Request(server.http + "/api/realtime/metrics/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        for key in ("requests", "handovers"):
            if line.startswith(f"dexter_realtime_plain_http_{key}_total "):
                values[key] = float(line.split()[1])
    return values


def test_a_request_that_is_not_plain_hands_the_connection_to_daphne_at_its_first_byte(server, admin_token):
    before = counted(server, admin_token)
    wire = Wire(server)
    try:
        wire.send(broadcast(admin_token, "before"))
        assert wire.answer()[0] == 202
        # A GET is daphne's; it and the POST after it (same connection, one write) are answered.
        get = f"GET /api/realtime/channels/global/history/ HTTP/1.1\r\nAuthorization: Bearer {admin_token}\r\n\r\n"
        wire.send(get.encode() + broadcast(admin_token, "after"))
        status, _, body = wire.answer()
        assert status == 200, body
        status, headers, body = wire.answer()
        assert status == 202 and json.loads(body)["text"] == "after"
    finally:
        wire.close()
    # The first POST was the front's; the GET and the POST after it daphne's (the scrape too).
    assert counted(server, admin_token) == {"requests": before["requests"] + 1, "handovers": before["handovers"] + 2}


CHUNKED_BODY = b'{"channel": "global", "message": {"type": "x"}}'


@pytest.mark.parametrize(
    ("request_bytes", "status", "kept"),
    [
        # Django reads no body without a Content-Length (its ASGI request), as under daphne alone: 400.
        (
            lambda t: (
                "POST /api/realtime/broadcast/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Authorization: Bearer {t}\r\nTransfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(CHUNKED_BODY), CHUNKED_BODY),
            400,
            True,
        ),
        (
            lambda t: broadcast(t)
            .replace(b"HTTP/1.1", b"HTTP/1.0", 1)
            .replace(b"Host:", b"Connection: keep-alive\r\nHost:"),
            202,
            False,  # Twisted closes after an HTTP/1.0 answer
        ),
    ],
    ids=["chunked", "http-1.0"],
)
def test_posts_that_are_not_plain_are_answered_by_daphne_on_the_same_connection(
    server, admin_token, request_bytes, status, kept
):
    before = counted(server, admin_token)
    wire = Wire(server)
    try:
        wire.send(broadcast(admin_token, "plain first"))
        assert wire.answer()[0] == 202
        wire.send(request_bytes(admin_token))
        answer = wire.answer()
        assert answer[0] == status, answer
        if kept:
            wire.send(broadcast(admin_token, "plain after"))
            assert wire.answer()[0] == 202
        else:
            assert wire.closed()
    finally:
        wire.close()
    assert counted(server, admin_token)["requests"] == before["requests"] + 1


def test_expect_continue_gets_its_100_from_daphne(server, admin_token):
    wire = Wire(server)
    try:
        request = broadcast(admin_token)
        head, _, body = request.partition(b"\r\n\r\n")
        wire.send(head + b"\r\nExpect: 100-continue\r\n\r\n")
        assert wire.answer()[0] == 100
        wire.send(body)
        assert wire.answer()[0] == 202
    finally:
        wire.close()


def test_connection_close_is_honoured(server, admin_token):
    wire = Wire(server)
    try:
        wire.send(broadcast(admin_token).replace(b"Host:", b"Connection: close\r\nHost:", 1))
        status, headers, _ = wire.answer()
        assert status == 202 and headers.get("connection") == "close"
        assert wire.closed()
    finally:
        wire.close()


def test_a_head_past_the_bound_or_a_bad_request_line_gets_daphnes_answer(server, admin_token):
    for request in (
        broadcast(admin_token).replace(b"Host:", b"X-Big: " + b"a" * 17000 + b"\r\nHost:", 1),
        b"POST nope HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    ):
        wire = Wire(server)
        try:
            wire.send(request)
            status_line = wire.file.readline()
            # Whatever daphne answers (or closes with): never a hang, never the front's 202.
            assert status_line == b"" or status_line.split()[1] in (b"400", b"404", b"431"), status_line
        finally:
            wire.close()
    # The server serves everyone else as before.
    wire = Wire(server)
    try:
        wire.send(broadcast(admin_token))
        assert wire.answer()[0] == 202
    finally:
        wire.close()


def test_a_client_gone_mid_request_leaves_the_server_serving(server, admin_token):
    for cut in (broadcast(admin_token)[:40], broadcast(admin_token)[:-5], broadcast(admin_token)):
        wire = Wire(server)
        wire.send(cut)
        wire.close()
    wire = Wire(server)
    try:
        wire.send(broadcast(admin_token, "still here"))
        status, _, body = wire.answer()
        assert status == 202 and json.loads(body)["text"] == "still here"
    finally:
        wire.close()


def answers(server, token: str) -> list[tuple[int, set[str], object]]:
    """Status, header names and body of the same requests, framing and timing aside."""
    requests = [
        broadcast(token, "same"),
        post("/api/realtime/broadcast/", b"{not json", token),
        post("/api/realtime/broadcast/", json.dumps({"channel": "nope", "data": {}}).encode(), token),
        post("/api/realtime/broadcast/", b"{}", None),
        post("/api/realtime/broadcast/", b"{}", "not-a-token"),
        post("/api/nowhere/", b"{}", token),
        post("/api/events/", json.dumps({"fingerprint": "fp-same", "title": "Same", "level": "error"}).encode(), token),
    ]
    out = []
    wire = Wire(server)
    try:
        for request in requests:
            wire.send(request)
            status, headers, body = wire.answer()
            try:
                parsed: object = json.loads(body)
            except ValueError:
                parsed = body.decode(errors="replace")[:200]
            if isinstance(parsed, dict):
                for volatile in ("seq", "ts", "time", "id", "issue", "event_id", "created_at", "received_at"):
                    parsed.pop(volatile, None)
            names = set(headers) - {"content-length", "transfer-encoding", "date"}
            out.append((status, names, parsed))
    finally:
        wire.close()
    return out


def test_the_same_answers_as_daphne_gives(server, server_factory, template_db, tmp_path):
    db = tmp_path / "daphne-only.sqlite3"
    shutil.copy(template_db, db)
    daphne_only = server_factory(
        server_env({"DATABASE_URL": f"sqlite:///{db}", "REALTIME_PLAIN_HTTP": "false"})
    ).start()
    front = answers(server, server.token("admin"))
    plain = answers(daphne_only, daphne_only.token("admin"))
    assert [a[0] for a in front] == [202, 400, 400, 401, 401, 404, 202]
    assert front == plain
