"""``GET /sse/`` against a real ``manage.py runrealtime`` process, read as plain HTTP (docs/protocol.md section 13)."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
import websockets

from .sse import open_stream, refused

pytestmark = pytest.mark.integration


def announce(server, admin: str, channel: str, text: str) -> dict:
    status, body = server.request(
        "POST",
        "/api/realtime/broadcast/",
        {"channel": channel, "message": {"type": "announcement", "message": text}},
        admin,
    )
    assert status == 202, body
    return body


async def publish(server, admin: str, channel: str, text: str) -> dict:
    return await asyncio.to_thread(announce, server, admin, channel, text)


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def shell_value(server, code: str) -> str:
    """The last line a ``manage.py shell -c`` printed (Django's shell may print a banner first)."""
    return server.shell(code).strip().splitlines()[-1]


def presence_of(server, admin: str, username: str) -> dict | None:
    status, body = server.request("GET", "/api/realtime/presence/", token=admin)
    assert status == 200, body
    return next((p for p in body if p["username"] == username), None)


async def test_subscribe_receive_cut_off_and_resume_with_last_event_id(server):
    alice, admin = server.token("alice"), server.token("admin")
    async with open_stream(server, "issues,global", alice) as stream:
        hello = await stream.next()
        assert hello.event == "connection" and hello.data["user"]["username"] == "alice"
        assert hello.id == "issues=0,global=0"
        assert stream.retry is not None and stream.retry > 0
        await publish(server, admin, "issues", "one")
        await publish(server, admin, "global", "two")
        first, second = await stream.next(), await stream.next()
        assert (first.event, first.data["channel"], first.data["seq"], first.data["message"]) == (
            "announcement",
            "issues",
            1,
            "one",
        )
        assert first.id == "issues=1,global=0" and second.id == "issues=1,global=1"
        last_id = stream.last_id
    # Cut off; publications land meanwhile.
    for text in ("missed 1", "missed 2", "missed 3"):
        await publish(server, admin, "issues", text)
    await publish(server, admin, "global", "missed 4")
    async with open_stream(server, "issues,global", alice, headers={"Last-Event-ID": last_id}) as stream:
        assert (await stream.next()).event == "connection"
        replayed = [await stream.next() for _ in range(4)]
        assert [(e.data["channel"], e.data["seq"], e.data["message"]) for e in replayed] == [
            ("issues", 2, "missed 1"),
            ("issues", 3, "missed 2"),
            ("issues", 4, "missed 3"),
            ("global", 2, "missed 4"),
        ]
        assert replayed[-1].id == "issues=4,global=2"
        await publish(server, admin, "issues", "live")
        live = await stream.next()
        assert (live.data["seq"], live.data["message"]) == (5, "live")  # nothing twice, nothing more


async def test_since_query_and_recovery_when_history_is_gone(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "REALTIME_HISTORY_SIZE": "3"}).start()
    alice, admin = server.token("alice"), server.token("admin")
    for n in range(6):
        await publish(server, admin, "issues", f"m{n + 1}")
    async with open_stream(server, "issues", alice, since="issues=1") as stream:
        assert (await stream.next()).event == "connection"
        kept = [await stream.next() for _ in range(3)]
        assert [e.data["seq"] for e in kept] == [4, 5, 6]
        recovery = await stream.next()
        assert recovery.event == "recovery" and recovery.data == {"channel": "issues", "recovered": False}
        assert stream.last_id == "issues=6"
    async with open_stream(server, "issues", alice, since="issues=5") as stream:
        assert (await stream.next()).event == "connection"
        only = await stream.next()
        assert only.data["seq"] == 6 and only.event == "announcement"


async def test_forbidden_unknown_and_bad_requests_are_refused_with_a_json_error(server):
    alice, bob = server.token("alice"), server.token("bob")
    bob_id = shell_value(
        server, "from django.contrib.auth.models import User; print(User.objects.get(username='bob').pk)"
    )
    assert await refused(server, "global,issues") == (
        403,
        {"type": "error", "code": "forbidden", "message": "not allowed on this channel", "channel": "issues"},
    )
    status, body = await refused(server, "issues,nope", alice)
    assert status == 400 and body["code"] == "unknown_channel" and body["channel"] == "nope"
    status, body = await refused(server, f"user:{bob_id}", alice)
    assert status == 403 and body["code"] == "forbidden", body
    status, body = await refused(server, "issue:99999", alice)
    assert status == 404 and body["code"] == "not_found"
    status, body = await refused(server, "issues", "not-a-token")
    assert status == 401 and body["code"] == "token_invalid" and "not-a-token" not in json.dumps(body)
    status, body = await refused(server, "")
    assert status == 400 and body["code"] == "invalid_message"
    status, body = await refused(server, "issues", alice, since="issues=abc")
    assert status == 400 and body["code"] == "invalid_message"
    # The server serves everyone else as before; Bearer and public channels work.
    async with open_stream(server, "user:" + bob_id, headers={"Authorization": f"Bearer {bob}"}) as stream:
        assert (await stream.next()).data["user"]["username"] == "bob"
    async with open_stream(server, "global") as stream:
        assert (await stream.next()).data["authenticated"] is False
    assert "not-a-token" not in server.log_path.read_text()


async def test_session_cookie_authenticates_a_same_site_page(server):
    cookie = shell_value(
        server,
        "from django.test import Client\n"
        "c = Client()\n"
        "assert c.login(username='alice', password='correct-horse-42')\n"
        "print(c.cookies['sessionid'].value)",
    )
    async with open_stream(server, "issues", headers={"Cookie": f"sessionid={cookie}"}) as stream:
        assert (await stream.next()).data["user"]["username"] == "alice"
    status, body = await refused(server, "issues", headers={"Cookie": "sessionid=forged"})
    assert status == 403 and body["code"] == "forbidden"


async def test_a_stream_is_a_connection_counted_toward_the_limit_and_in_presence(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "WEBSOCKET_MAX_CONNECTIONS": "2", "WEBSOCKET_PRESENCE_GRACE": "0.5"})
    server.start()
    alice, admin = server.token("alice"), server.token("admin")
    async with open_stream(server, "global", alice) as stream:
        await stream.next()
        entry = await wait_for(lambda: presence_of(server, admin, "alice"), what="alice in presence")
        assert entry["status"] == "online" and entry["connection_count"] == 1
        async with websockets.connect(server.ws_url("tab-1", alice)) as ws:
            assert json.loads(await ws.recv())["type"] == "connection"
            status, body = await refused(server, "global", alice)
            assert status == 503 and body["code"] == "unavailable"
            async with websockets.connect(server.ws_url("tab-2", alice)) as third:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(third.recv(), 5)
                assert closed.value.rcvd.code == 4503
    # Both gone: their places and alice's presence are released.
    await wait_for(lambda: (presence_of(server, admin, "alice") or {}).get("status") == "offline", what="offline")
    async with open_stream(server, "global", alice) as stream:
        assert (await stream.next()).event == "connection"


async def test_shutdown_ends_the_stream_with_close_4503_and_clears_its_row(server):
    alice = server.token("alice")
    async with open_stream(server, "issues", alice) as stream:
        await stream.next()
        server.proc.send_signal(15)
        rest = await stream.until_closed(timeout=10)
        assert [e.event for e in rest] == ["close"]
        assert rest[0].data == {"type": "close", "code": 4503, "reason": "server shutting down"}
    assert server.proc.wait(15) is not None
    assert shell_value(server, "from realtime.models import Connection; print(Connection.objects.count())") == "0"


async def test_disconnected_by_an_administrator_and_taken_over(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "WEBSOCKET_HEARTBEAT_INTERVAL": "2"}).start()
    alice = server.token("alice")
    async with open_stream(server, "issues", alice, client_id="tab-9") as first:
        hello = (await first.next()).data
        async with open_stream(server, "issues", alice, client_id="tab-9") as second:
            second_id = (await second.next()).data["connection_id"]
            assert [e.data for e in await first.until_closed()] == [{"type": "close", "code": 4409}]
            server.shell(
                f"from realtime.connections import disconnect_connections; disconnect_connections([{second_id!r}])"
            )
            assert [e.data["code"] for e in await second.until_closed()] == [4403]
    assert hello["client_id"] == "tab-9"


async def test_ping_comments_keep_an_idle_stream_alive(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "REALTIME_SSE_PING_INTERVAL": "0.3"}).start()
    async with open_stream(server, "global") as stream:
        await stream.next()
        with pytest.raises(TimeoutError):
            await stream.next(timeout=1.2)
        assert stream.comments.count("ping") >= 2


def raw_stream(server, path: str) -> socket.socket:
    """A client that sends its request and then never reads: the kernel buffers fill, then the server's."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


async def test_a_slow_reader_is_closed_without_harming_others(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "WEBSOCKET_SEND_BUFFER_LIMIT": "262144"}).start()
    admin = server.token("admin")
    slow = raw_stream(server, "/sse/?channels=global")
    count = lambda: server.request("GET", "/api/realtime/stats/", token=admin)[1]["this_process"]["connections"]  # noqa: E731
    try:
        async with open_stream(server, "global") as fast:
            await fast.next()
            await wait_for(lambda: count() == 2, what="two streams")
            big = "x" * 60000
            sent = 0
            # Bounded: at most 400 x 60 KB; the slow reader is closed long before that.
            while count() == 2 and sent < 400:
                server.shell(
                    "from realtime.publisher import publish\n"
                    f"for _ in range(40): publish('global', {{'type': 'announcement', 'message': {big!r}}})"
                )
                sent += 40
                for _ in range(40):  # the fast reader keeps up, in order
                    ev = await fast.next(timeout=10)
                    assert ev.data["message"] == big
            assert count() == 1, "the slow reader was not closed"
            last = ev.data["seq"]
            await publish(server, admin, "global", "after")
            after = await fast.next()
            assert (after.data["seq"], after.data["message"]) == (last + 1, "after")
        assert "reads too slowly" in server.log_path.read_text()
    finally:
        slow.close()
