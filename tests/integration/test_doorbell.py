"""Doorbells (realtime/doorbell.py): a publication committed in another process
reaches a server's sockets at once, without Redis, the database still the truth.

Each test turns the poller off (REALTIME_POLL_INTERVAL=3600), so anything that
arrives came through the doorbell: a loopback datagram on SQLite, NOTIFY/LISTEN
on PostgreSQL. The last tests turn the doorbell off instead: the poller alone
still delivers it (a lost ring costs one poll interval, never the message).
"""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import websockets

from .conftest import manage, prepare_database, server_env
from .test_scale_out import broadcast, recv, start_all, subscribe

pytestmark = pytest.mark.integration

POLLER_OFF = {"REALTIME_POLL_INTERVAL": "3600"}
# A `manage.py shell` starts Django in ~1-2 s here; the ring itself takes milliseconds.
SHELL_BOUND = 15.0
_db_names = itertools.count()

PUBLISH = """
import json
from realtime.publisher import publish
print(json.dumps(publish("global", {"type": "announcement", "message": %r})))
"""


async def shell_publish(env: dict, text: str) -> dict:
    """publish() in a `manage.py shell` process of its own, off the event loop."""
    done = await asyncio.to_thread(manage, env, "shell", "-c", PUBLISH % text)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def postgres_template(postgres_server):
    name = f"doorbell_template_{next(_db_names)}"
    prepare_database(server_env({"DATABASE_URL": postgres_server.create_database(name)}))
    return name


@pytest.fixture
def postgres_env(postgres_server, postgres_template):
    url = postgres_server.create_database(f"doorbell_{next(_db_names)}", template=postgres_template)
    return server_env({"DATABASE_URL": url})


async def _shell_publication_reaches_socket(env: dict, server) -> None:
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        assert (await recv(ws))["type"] == "connection"
        await subscribe(ws, "global")
        sent = await shell_publish(env, "from a shell")
        assert await recv(ws, timeout=SHELL_BOUND) == sent
        sent = await shell_publish(env, "and again")
        assert await recv(ws, timeout=SHELL_BOUND) == sent
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)  # each once


async def _server_b_publication_reaches_server_a(a, b) -> None:
    admin = b.token("admin")
    async with websockets.connect(a.ws_url("tab-1")) as ws:
        await recv(ws)
        await subscribe(ws, "global")
        for text in ("one", "two"):
            sent = await broadcast(b, admin, text)
            assert await recv(ws, timeout=5) == sent


async def test_sqlite_doorbell_delivers_a_shell_publication_with_the_poller_off(sqlite_env, server_factory):
    env = {**sqlite_env, **POLLER_OFF}
    await _shell_publication_reaches_socket(env, server_factory(env).start())


async def test_sqlite_doorbell_between_two_servers_with_the_poller_off(sqlite_env, server_factory):
    env = {**sqlite_env, **POLLER_OFF}
    a, b = start_all(server_factory(env), server_factory(env))
    await _server_b_publication_reaches_server_a(a, b)


@pytest.mark.services
async def test_postgresql_doorbell_delivers_a_shell_publication_without_redis(postgres_env, server_factory):
    env = {**postgres_env, **POLLER_OFF}
    assert "REDIS_URL" not in env
    await _shell_publication_reaches_socket(env, server_factory(env).start())


@pytest.mark.services
async def test_postgresql_doorbell_between_two_servers_without_redis(postgres_env, server_factory):
    env = {**postgres_env, **POLLER_OFF}
    a, b = start_all(server_factory(env), server_factory(env))
    await _server_b_publication_reaches_server_a(a, b)


async def test_without_the_doorbell_nothing_arrives_while_the_poller_is_off(sqlite_env, server_factory):
    """The control for the tests above: their deliveries are the doorbell's."""
    env = {**sqlite_env, **POLLER_OFF}
    server = server_factory(env).start()
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        await recv(ws)
        await subscribe(ws, "global")
        await shell_publish({**env, "REALTIME_DOORBELL": "off"}, "silent")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 1.0)


async def test_a_lost_ring_is_delivered_by_the_poller(sqlite_env, server_factory):
    # The publisher rings no doorbell (as if its datagram was lost); the server polls every 0.25 s.
    server = server_factory({**sqlite_env, "REALTIME_POLL_INTERVAL": "0.25"}).start()
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        await recv(ws)
        await subscribe(ws, "global")
        sent = await shell_publish({**sqlite_env, "REALTIME_DOORBELL": "off"}, "lost ring")
        assert await recv(ws, timeout=5) == sent


@pytest.mark.services
async def test_a_lost_notify_is_delivered_by_the_poller(postgres_env, server_factory):
    server = server_factory({**postgres_env, "REALTIME_POLL_INTERVAL": "0.25"}).start()
    async with websockets.connect(server.ws_url("tab-1")) as ws:
        await recv(ws)
        await subscribe(ws, "global")
        sent = await shell_publish({**postgres_env, "REALTIME_DOORBELL": "off"}, "lost notify")
        assert await recv(ws, timeout=5) == sent


class RefusingPostgres:
    """A TCP port that accepts and hangs up at once: PostgreSQL unreachable, every LISTEN attempt fails."""

    def __init__(self) -> None:
        self.attempts: list[float] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RefusingPostgres:
        def hang_up(reader, writer):
            self.attempts.append(asyncio.get_running_loop().time())
            writer.close()

        self.server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1]


async def test_a_failing_listen_logs_one_warning_and_backs_off(monkeypatch, caplog):
    """PostgreSQL away: one warning (no traceback per retry), and the retries space out."""
    from realtime import doorbell

    async with RefusingPostgres() as pg:
        params = {
            "host": "127.0.0.1",
            "port": pg.port,
            "dbname": "x",
            "user": "x",
            "connect_timeout": 2,
            "sslmode": "disable",
        }
        monkeypatch.setattr(doorbell, "_psycopg_params", lambda: params)
        listener = doorbell.Listener(lambda *ring: None, lambda: None)
        caplog.set_level("DEBUG", logger="realtime.doorbell")
        task = asyncio.ensure_future(listener._listen_postgresql())
        try:
            async with asyncio.timeout(15):
                while len(pg.attempts) < 3:
                    await asyncio.sleep(0.05)
        finally:
            task.cancel()
    warnings = [r for r in caplog.records if r.name == "realtime.doorbell" and r.levelno >= 30]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].exc_info is None  # one line, not a traceback
    first_wait, second_wait = pg.attempts[1] - pg.attempts[0], pg.attempts[2] - pg.attempts[1]
    assert second_wait > first_wait * 1.5  # backing off, not once a second
