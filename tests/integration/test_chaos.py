"""Chaos on real processes: whatever dies, nothing committed is lost and nothing is left behind.

Two ``manage.py runrealtime`` servers on one PostgreSQL database with
REDIS_URL, a publisher process committing ``publish()`` at a steady rate on a
few channels, and CHAOS_CLIENTS (200) clients churning: connect to either
server, subscribe (with ``since`` once they have a seq, remembered per channel
as a real client does), receive, then abort the TCP connection, close it, or
drop it right after the handshake, and come back. Meanwhile servers are
SIGKILLed and restarted, one is stopped with SIGTERM, and Redis is stopped and
started. Then the publisher stops and every client reconnects once more and
catches up.

What must hold at the end:

- for every client and channel, the seqs received are exactly those committed
  on that channel since the client first subscribed to it (the publisher's
  log), every ``subscribed`` said ``recovered: true``, and no socket got a seq
  twice or out of order;
- no ``Connection`` row, hub entry, hub channel, extra asyncio task or
  presence "online" is left (``/api/realtime/stats/``, ``/presence/``);
- each server's RSS is within 20% of what it was when it started serving.

Two sizes. By default (part of ``make test``): 40 clients, 10 publications a
second and each kind of fault once (a server SIGKILLed and restarted, Redis
stopped and started, the other server stopped with SIGTERM and restarted),
about 1-2 minutes. ``CHAOS=1``: the full run of issue 10, 200 clients, 20
publications a second and rounds of the faults for 45 s (CHAOS_SECONDS),
~90 s in all on an idle machine, ~200 s on a loaded one. A longer soak:
``CHAOS=1 CHAOS_SECONDS=600 pytest tests/integration/test_chaos.py``.
CHAOS_CLIENTS, CHAOS_RATE and CHAOS_SEED override either size.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest
import websockets

from .conftest import ROOT, USER_PASSWORD, LiveServer, manage, server_env
from .leftovers import leftovers, wait_until_clean

pytestmark = [pytest.mark.integration, pytest.mark.services]

FULL = os.environ.get("CHAOS") == "1"
# 0 s: the faults' one round is the whole chaos (its pauses and restarts take ~40 s).
CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "45" if FULL else "0"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "200" if FULL else "40"))
RATE = float(os.environ.get("CHAOS_RATE", "20" if FULL else "10"))  # publications a second, all channels
SEED = int(os.environ.get("CHAOS_SEED", str(random.randrange(1 << 30))))
HEARTBEAT = 10.0  # WEBSOCKET_HEARTBEAT_INTERVAL of the servers
USERS = [f"chaos{i}" for i in range(10)]
PUBLIC = ["global"]
SIGNED_IN = ["issues", "alerts"]
_db_names = itertools.count()


@dataclass
class Client:
    index: int
    client_id: str
    user: str | None
    token: str | None
    channels: list[str]
    batch: bool
    first: dict[str, int] = field(default_factory=dict)  # channel -> seq at the first subscribe
    last: dict[str, int] = field(default_factory=dict)  # channel -> highest seq received
    received: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    twice: list[tuple] = field(default_factory=list)  # (socket, channel, seq, previous) out of order
    unrecovered: list[tuple] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    closes: Counter = field(default_factory=Counter)
    sockets: int = 0
    served: int = 0  # sockets that got their `connection` frame


class Cluster:
    """The servers, the ones clients may use now, and their RSS when they started serving."""

    def __init__(self, servers: list[LiveServer], staff_token: str):
        self.servers = servers
        self.available: list[LiveServer] = []
        self.start_rss: dict[int, int] = {}
        self.start_tasks: dict[int, int] = {}
        self.staff_token = staff_token

    async def bring_up(self, server: LiveServer) -> None:
        """Start, warm up with one client of our own, note RSS and tasks, then let clients in."""
        # Under the load of the churn a start takes several times its usual ~3 s.
        await asyncio.to_thread(server.start, 60)
        await warm_up(server)
        found = await asyncio.to_thread(leftovers, server, self.staff_token)
        self.start_tasks[server.port] = found["hub_tasks"]
        self.start_rss[server.port] = rss(server)
        self.available.append(server)

    async def take_down(self, server: LiveServer, sig: int) -> None:
        if server in self.available:
            self.available.remove(server)
        await asyncio.to_thread(server.stop, sig)


def rss(server: LiveServer) -> int:
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def warm_up(server: LiveServer) -> None:
    """One connect, subscribe with since and close: what every later socket uses is loaded.

    Tried a few times: a fresh process's first handshake can outlast autobahn's
    5 s opening-handshake timeout on a loaded two-core machine.
    """
    for attempt in range(5):
        try:
            async with websockets.connect(server.ws_url("warm-up"), open_timeout=10) as ws:
                assert json.loads(await ws.recv())["type"] == "connection"
                await ws.send(json.dumps({"type": "subscribe", "channel": "global", "since": 0}))
                while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "subscribed":
                    pass
                return
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidMessage):
            if attempt == 4:
                raise
            await asyncio.sleep(1)


def publications(frame: dict):
    if frame.get("type") == "batch":
        yield from frame["messages"]
    elif "seq" in frame and "channel" in frame and frame.get("type") not in ("subscribed", "history"):
        yield frame


async def session(client: Client, server: LiveServer, hold: float, rng: random.Random, until=None) -> None:
    """One socket's life: connect, subscribe (resuming), read for ``hold`` s (or ``until()``), end."""
    client.sockets += 1
    socket_id = client.sockets
    query = "batch=1" if client.batch else ""
    url = server.ws_url(client.client_id, token=client.token, query=query)
    ending = "abort" if until is None else "close"
    if until is None:
        ending = rng.choices(["abort", "close", "handshake"], [6, 3, 1])[0]
    async with websockets.connect(url, open_timeout=5, close_timeout=2, max_size=None) as ws:
        if ending == "handshake":  # gone before the server's first frame is written
            ws.transport.abort()
            return
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert hello["type"] == "connection", hello
        client.served += 1
        for channel in client.channels:
            msg = {"type": "subscribe", "channel": channel, "ref": channel}
            if channel in client.last:
                msg["since"] = client.last[channel]
            await ws.send(json.dumps(msg))
        on_socket: dict[str, int] = {}
        deadline = time.monotonic() + (hold if until is None else 30.0)
        next_ping = time.monotonic() + HEARTBEAT / 3
        while True:
            now = time.monotonic()
            if now >= deadline or (until is not None and until(client)):
                break
            if now >= next_ping:
                await ws.send(json.dumps({"type": "ping"}))
                next_ping = now + HEARTBEAT / 3
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.05, min(deadline - now, next_ping - now, 1.0)))
            except TimeoutError:
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "subscribed":
                channel = frame["channel"]
                if not frame["recovered"]:
                    client.unrecovered.append((socket_id, channel, client.last.get(channel), frame["seq"]))
                if channel not in client.first:
                    client.first[channel] = frame["seq"]
                    client.last[channel] = frame["seq"]
                continue
            if kind == "error":
                client.errors[frame.get("code")] += 1
                continue
            for pub in publications(frame):
                channel, seq = pub["channel"], pub["seq"]
                previous = on_socket.get(channel)
                if previous is not None and seq <= previous:
                    client.twice.append((socket_id, channel, seq, previous))
                on_socket[channel] = seq
                if channel in client.first and seq > client.first[channel]:
                    client.received[channel].add(seq)
                    client.last[channel] = max(client.last[channel], seq)
        if ending == "abort":
            ws.transport.abort()


async def churn(client: Client, cluster: Cluster, stop_at, rng: random.Random) -> None:
    while time.monotonic() < stop_at():
        if not cluster.available:
            await asyncio.sleep(0.2)
            continue
        server = rng.choice(cluster.available)
        try:
            await session(client, server, rng.uniform(2.0, 10.0), rng)
        except websockets.ConnectionClosed as exc:
            client.closes[exc.rcvd.code if exc.rcvd else 1006] += 1
        except (OSError, websockets.InvalidHandshake, websockets.InvalidMessage) as exc:
            # Refused (a server down), or a handshake past autobahn's 5 s while a
            # restarted server takes everyone's reconnects on a loaded machine.
            client.closes[type(exc).__name__] += 1
        await asyncio.sleep(rng.uniform(0.05, 0.5))


async def catch_up(client: Client, cluster: Cluster, final: dict[str, int], rng: random.Random) -> None:
    """A last, clean session that stays until the client holds every seq committed on its channels."""

    def done(c: Client) -> bool:
        return all(c.last.get(ch, -1) >= final.get(ch, 0) for ch in c.channels)

    await asyncio.sleep(rng.uniform(0, 2))  # not all 200 in the same instant
    for _attempt in range(20):
        try:
            await session(client, rng.choice(cluster.available), 0, rng, until=done)
        except (websockets.ConnectionClosed, websockets.InvalidHandshake, websockets.InvalidMessage, OSError) as exc:
            client.closes[f"final {type(exc).__name__}"] += 1
        if done(client):
            return
        await asyncio.sleep(rng.uniform(0.5, 1.5))


def committed(log_path) -> dict[str, dict[int, int]]:
    """The publisher's log: channel -> {seq: n}."""
    out: dict[str, dict[int, int]] = defaultdict(dict)
    for line in log_path.read_text().splitlines():
        channel, seq, n = line.split()
        assert int(seq) not in out[channel], f"seq {seq} committed twice on {channel}"
        out[channel][int(seq)] = int(n)
    return out


# The users, and their access tokens minted here (200 logins would be 200 password hashes).
CREATE_USERS = f"""
import json
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import AccessToken
for name in {USERS!r}:
    User.objects.create_user(name, password={USER_PASSWORD!r})
users = User.objects.filter(username__in=[*{USERS!r}, "admin"])
print("users", json.dumps({{u.username: [u.pk, str(AccessToken.for_user(u))] for u in users}}))
"""


@pytest.fixture
def chaos_env(postgres_server, redis_control, tmp_path):
    url = postgres_server.create_database(f"chaos_{next(_db_names)}")
    env = server_env(
        {
            "DATABASE_URL": url,
            "REDIS_URL": redis_control.url,
            "WEBSOCKET_HEARTBEAT_INTERVAL": str(HEARTBEAT),
            "WEBSOCKET_MAX_CONNECTIONS": "10000",
            "JWT_ACCESS_LIFETIME": "7200",
            "REALTIME_HISTORY_SIZE": "1000000",
            "REALTIME_LOG_LEVEL": "WARNING",
        }
    )
    from .conftest import prepare_database

    prepare_database(env)
    out = manage(env, "shell", "-c", CREATE_USERS).stdout
    return env, json.loads(out.split("users", 1)[1])


# The chaos itself, the catch-up and the final checks, with room for a loaded machine.
@pytest.mark.timeout(int(360 + 4 * CHAOS_SECONDS))
async def test_chaos_nothing_lost_nothing_left_behind(chaos_env, redis_control, server_factory, tmp_path):
    chaos_env, users = chaos_env
    user_ids = {name: pk for name, (pk, _token) in users.items()}
    tokens = {name: token for name, (_pk, token) in users.items()}
    rng = random.Random(SEED)
    print(f"chaos: seed {SEED}, {CLIENTS} clients, {CHAOS_SECONDS:.0f} s, {RATE:.0f} publications/s")
    a, b = server_factory(chaos_env), server_factory(chaos_env)
    cluster = Cluster([a, b], tokens["admin"])
    await asyncio.gather(cluster.bring_up(a), cluster.bring_up(b))
    user_channels = [f"user:{user_ids[u]}" for u in USERS[:3]]
    all_channels = PUBLIC + SIGNED_IN + user_channels
    clients = []
    for i in range(CLIENTS):
        user = USERS[i % len(USERS)] if i % 2 else None
        channels = list(PUBLIC)
        if user:
            channels += rng.sample(SIGNED_IN, rng.randint(0, 2))
            if f"user:{user_ids[user]}" in user_channels:
                channels.append(f"user:{user_ids[user]}")
        clients.append(Client(i, f"c{i}", user, tokens.get(user), channels, batch=i % 4 == 3))

    log_path = tmp_path / "committed.txt"
    publisher = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.chaos_publisher", str(log_path), str(RATE), *all_channels],
        cwd=ROOT,
        env=chaos_env,
        stdout=open(tmp_path / "publisher.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        started = time.monotonic()
        chaos_until = started + CHAOS_SECONDS
        stop_at = float("inf")  # the churn lasts as long as the faults, and a little more
        churners = [
            asyncio.ensure_future(churn(c, cluster, lambda: stop_at, random.Random(rng.random()))) for c in clients
        ]
        faults = []

        async def redis_down():
            await asyncio.to_thread(redis_control.stop)

        async def redis_up():
            await asyncio.to_thread(redis_control.start)

        # One fault after another, each given its time whatever a start took
        # (a start takes several times its usual ~3 s under this load), and
        # rounds of them until CHAOS_SECONDS are up.
        rounds = [
            (2, cluster.take_down, a, signal.SIGKILL),
            (2, cluster.bring_up, a),
            (4, cluster.take_down, b, signal.SIGKILL),
            (2, cluster.bring_up, b),
            (4, redis_down),
            (6, redis_up),
            (4, cluster.take_down, a, signal.SIGTERM),
            (1, cluster.bring_up, a),
        ]
        if not FULL:  # every kind of fault once, two restarts instead of three
            rounds = [
                (2, cluster.take_down, a, signal.SIGKILL),
                (2, cluster.bring_up, a),
                (3, redis_down),
                (4, redis_up),
                (3, cluster.take_down, b, signal.SIGTERM),
                (1, cluster.bring_up, b),
            ]
        while True:
            for pause, action, *args in rounds:
                await asyncio.sleep(pause)
                at = round(time.monotonic() - started, 1)
                await action(*args)
                faults.append((at, action.__name__, *[getattr(x, "port", x) for x in args]))
            if time.monotonic() > chaos_until - 25:
                break
        stop_at = max(chaos_until, time.monotonic() + 5)  # the churn goes on past the last fault
        await asyncio.gather(*churners)
    finally:
        publisher.send_signal(signal.SIGTERM)
        publisher.wait(20)
    print("faults:", faults)
    log = committed(log_path)
    final = {ch: max(seqs) if seqs else 0 for ch, seqs in log.items()}
    print(f"committed: {sum(map(len, log.values()))} publications, last seq per channel {final}")

    await asyncio.gather(*(catch_up(c, cluster, final, random.Random(rng.random())) for c in clients))

    problems = []
    for c in clients:
        for channel in c.channels:
            if channel not in c.first:
                problems.append(f"client {c.index} never subscribed to {channel}")
                continue
            expected = {seq for seq in log.get(channel, {}) if seq > c.first[channel]}
            got = c.received[channel]
            if got != expected:
                missing = sorted(expected - got)
                extra = sorted(got - expected)
                problems.append(
                    f"client {c.index} {channel}: missing {missing[:10]} ({len(missing)}), extra {extra[:10]}"
                )
        if c.twice:
            problems.append(f"client {c.index}: seq twice or out of order on one socket: {c.twice[:5]}")
        if c.unrecovered:
            problems.append(f"client {c.index}: subscribed with recovered false: {c.unrecovered[:5]}")
    sockets = sum(c.sockets for c in clients)
    served = sum(c.served for c in clients)
    closes = sum((c.closes for c in clients), Counter())
    errors = sum((c.errors for c in clients), Counter())
    print(f"{sockets} sockets, {served} served; closes seen by clients: {dict(closes)}; error frames: {dict(errors)}")

    left = await asyncio.to_thread(
        wait_until_clean, cluster.servers, tokens["admin"], 3 * HEARTBEAT, cluster.start_tasks
    )
    print("left behind:", left)
    for server, found in zip(cluster.servers, left, strict=True):
        if found["connection_rows"] or found["hub_connections"] or found["hub_channels"] or found["online"]:
            problems.append(f"server {server.port} holds {found}")
        if found["hub_tasks"] > cluster.start_tasks[server.port]:
            problems.append(
                f"server {server.port}: {found['hub_tasks']} tasks, {cluster.start_tasks[server.port]} at start"
            )
        now_rss, start_rss = rss(server), cluster.start_rss[server.port]
        print(f"server {server.port} RSS {start_rss / 2**20:.1f} -> {now_rss / 2**20:.1f} MiB")
        if now_rss > 1.2 * start_rss:
            problems.append(f"server {server.port} RSS {start_rss / 2**20:.1f} -> {now_rss / 2**20:.1f} MiB")
    assert not problems, "\n".join(problems[:40])
