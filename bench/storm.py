"""Reconnect storm: 1,000 clients resume with ``since`` after a server restart.

    .venv/bin/python -m bench.storm                    # what bench/README.md reports
    .venv/bin/python -m bench.storm --clients 100      # a quick look
    .venv/bin/python -m bench.storm --stop term        # a clean restart (4503) instead of SIGKILL

One Dexter server (``manage.py runrealtime`` on a fresh SQLite file, pinned to
core 0 where it can be) and this load generator (core 1). ``--clients`` sockets,
signed in as ``--users`` users in turn, subscribe to ``global``; ``--before``
publications are made from another process (``manage.py shell``) and every
client receives them. Then the server is killed (SIGKILL, or SIGTERM with
``--stop term``), ``--during`` more publications are stored while it is down,
and the same command starts it again on the same port. As soon as the port
accepts, every client reconnects at once and subscribes with ``since`` set to
the highest ``seq`` it received: the storm.

Measured from the restart (the new process spawned): when the port accepted,
when every client had its ``subscribed`` and when every client had caught up
to the last publication; per client, from its reconnect to caught up. Nothing
lost means every client saw seqs 1..before+during on ``global``, each once, in
order. The restarted server counts its database queries (bench/storm_settings.py,
by verb and table; commits are not statements and are not counted): a snapshot
when its port first accepts, before any client is let in, and one when all have
caught up; the difference is the storm's. Afterwards the connection rows of the
new server are counted in the SQLite file (they must be ``--clients``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .client import BenchClient, Closed, open_client
from .servers import LOADGEN_CORE, ROOT, _child_setup, can_pin, dexter_env, free_port, raise_nofile

CHANNEL = "global"

SETUP = """
import json
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import AccessToken
users = [User.objects.create_user(f"u{{n}}") for n in range({users})]
print(json.dumps([str(AccessToken.for_user(u)) for u in users]))
"""

PUBLISH = """
from realtime import publish
for n in range({count}):
    publish("global", {{"type": "announcement", "message": "x" * {pad}, "phase": "{phase}"}})
"""


class StormClient:
    """One client across both servers: the seqs it saw and when it caught up."""

    def __init__(self, index: int, token: str) -> None:
        self.path = f"/ws/c{index}/?token={token}"
        self.last = 0
        self.seen: list[int] = []
        self.target = 0
        self.caught_up = asyncio.get_running_loop().create_future()
        self.socket: BenchClient | None = None
        self.attempts = 0
        self.started = 0.0
        self.subscribed_at = 0.0
        self.done_at = 0.0

    def on_message(self, msg: dict) -> None:
        if msg.get("channel") != CHANNEL or msg.get("type") != "announcement":
            return
        self.seen.append(msg["seq"])
        self.last = max(self.last, msg["seq"])
        if self.last >= self.target and not self.caught_up.done():
            self.done_at = time.monotonic()
            self.caught_up.set_result(None)

    def expect_up_to(self, target: int) -> None:
        self.target = target
        self.done_at = 0.0
        self.caught_up = asyncio.get_running_loop().create_future()
        if self.last >= target:
            self.caught_up.set_result(None)

    async def connect(self, port: int, deadline: float) -> None:
        """Connect and subscribe (with ``since`` once it has seen something), retrying until ``deadline``."""
        self.started = time.monotonic()
        while True:
            self.attempts += 1
            try:
                self.socket = await open_client(
                    "127.0.0.1", port, self.path, on_message=self.on_message, timeout=deadline - time.monotonic()
                )
                fut = self.socket.expect("subscribed")
                frame = {"type": "subscribe", "channel": CHANNEL}
                if self.last:
                    frame["since"] = self.last
                self.socket.send_json(frame)
                reply = await asyncio.wait_for(fut, deadline - time.monotonic())
                if reply.get("type") != "subscribed":
                    raise Closed(f"subscribe refused: {reply}")
                self.subscribed_at = time.monotonic()
                return
            except (OSError, Closed, TimeoutError):
                if self.socket is not None:
                    self.socket.close()
                if time.monotonic() > deadline:
                    raise
                # The jittered retry of a real client, short: the server is up.
                await asyncio.sleep(random.uniform(0.05, 0.2))


class Server:
    def __init__(self, env: dict, port: int, log: Path) -> None:
        self.env, self.port, self.log_path = env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Spawn; returns the spawn time (monotonic)."""
        log = open(self.log_path, "ab")
        spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runrealtime", "-b", "127.0.0.1", "-p", str(self.port), "-v", "0"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        log.close()
        return spawned

    async def wait_port(self, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return time.monotonic()
            except OSError:
                await asyncio.sleep(0.02)
        raise RuntimeError(f"server did not listen in {timeout} s")

    async def query_counts(self) -> dict[str, int]:
        """The server's query counts so far (SIGUSR1: it rewrites the file)."""
        path = Path(self.env["BENCH_QUERY_COUNTS"])
        path.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR1)
        for _ in range(500):
            if path.exists():
                return json.loads(path.read_text())
            await asyncio.sleep(0.01)
        raise RuntimeError("no query counts from the server")

    def stop(self, how: str) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        self.proc.wait(30)

    def cpu(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def manage(env: dict, code: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def wait_all(futures, timeout: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.gather(*futures), timeout)
        return True
    except TimeoutError:
        return False


def quiet_lost_handshakes(loop, context) -> None:
    """A handshake cut short leaves its hello future failed and unread: that is a retry, not news."""
    if isinstance(context.get("exception"), Closed):
        return
    loop.default_exception_handler(context)


async def storm(opts, tmp: Path) -> dict:
    asyncio.get_running_loop().set_exception_handler(quiet_lost_handshakes)
    db = tmp / "storm.sqlite3"
    env = dexter_env(
        db,
        {
            "DJANGO_SETTINGS_MODULE": "bench.storm_settings",
            "BENCH_QUERY_COUNTS": str(tmp / "queries.json"),
            "WEBSOCKET_HEARTBEAT_INTERVAL": "30",
        },
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    tokens = json.loads(manage(env, SETUP.format(users=opts.users)).strip().splitlines()[-1])
    server = Server(env, free_port(), tmp / "server.log")
    server.start()
    await server.wait_port()
    clients = [StormClient(n, tokens[n % len(tokens)]) for n in range(opts.clients)]

    # Before: everyone connected and subscribed, then caught up on --before publications.
    sem = asyncio.Semaphore(64)

    async def first_connect(client: StormClient) -> None:
        async with sem:
            await client.connect(server.port, time.monotonic() + 120)

    await asyncio.gather(*(first_connect(c) for c in clients))
    say(f"{len(clients)} clients connected and subscribed")
    for c in clients:
        c.expect_up_to(opts.before)
    manage(env, PUBLISH.format(count=opts.before, pad=opts.pad, phase="before"))
    if not await wait_all([c.caught_up for c in clients], 60):
        raise RuntimeError("the clients did not receive the first publications")

    say(f"all received {opts.before} publications; stopping the server ({opts.stop})")
    # The restart, with --during publications stored while the server is down.
    server.stop(opts.stop)
    lost_deadline = time.monotonic() + 30
    while any(not c.socket.closed for c in clients) and time.monotonic() < lost_deadline:
        await asyncio.sleep(0.05)
    manage(env, PUBLISH.format(count=opts.during, pad=opts.pad, phase="during"))
    total = opts.before + opts.during
    for c in clients:
        c.expect_up_to(total)
        c.attempts = 0
    spawned = server.start()
    port_open = await server.wait_port()
    before_counts = await server.query_counts()
    cpu_at_start = server.cpu()
    profiler = None
    if opts.profile is not None:
        # py-spy's raw format (collapsed stacks), of the storm only: started now, stopped when all caught up.
        spy = str(Path(sys.executable).parent / "py-spy")
        cmd = [spy, "record", "--pid", str(server.proc.pid), "--format", "raw", "--output", str(opts.profile)]
        profiler = subprocess.Popen([*cmd, "--rate", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    say("restarted; the storm starts")
    # The storm: every client at once.
    deadline = time.monotonic() + opts.timeout
    tasks = [asyncio.ensure_future(c.connect(server.port, deadline)) for c in clients]
    all_subscribed = await wait_all(tasks, opts.timeout)
    subscribed_at = time.monotonic()
    all_caught_up = await wait_all([c.caught_up for c in clients], max(0.1, deadline - time.monotonic()))
    caught_up_at = time.monotonic()
    storm_cpu = server.cpu() - cpu_at_start
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(30)
    after_counts = await server.query_counts()
    # Writes still queued when the last client caught up (the batched ones): wait for them, bounded.
    rows = await connection_rows(db, server, opts.clients, 10)
    settled_counts = await server.query_counts()

    failures = [t.exception() for t in tasks if t.done() and not t.cancelled() and t.exception()]
    for t in tasks:
        t.cancel()
    for c in clients:
        if c.socket is not None:
            c.socket.close()
    server.stop("term")

    holes = sum(1 for c in clients if sorted(set(c.seen)) != list(range(1, total + 1)))
    repeats = sum(len(c.seen) - len(set(c.seen)) for c in clients)
    out_of_order = sum(1 for c in clients if c.seen != sorted(c.seen))
    storm_queries = diff(after_counts, before_counts)
    settled_queries = diff(settled_counts, before_counts)
    per_client = [c.done_at - c.started for c in clients if c.done_at]
    return {
        "clients": opts.clients,
        "users": opts.users,
        "stop": opts.stop,
        "publications": {"before": opts.before, "during": opts.during},
        "port_open_s": round(port_open - spawned, 2),
        "all_subscribed_s": round(subscribed_at - spawned, 2) if all_subscribed else None,
        "all_caught_up_s": round(caught_up_at - spawned, 2) if all_caught_up else None,
        "storm_s_from_port_open": round(caught_up_at - port_open, 2) if all_caught_up else None,
        "client_resume_p50_s": round(pct(per_client, 50), 2) if per_client else None,
        "client_resume_p99_s": round(pct(per_client, 99), 2) if per_client else None,
        "connect_attempts": sum(c.attempts for c in clients),
        "failed_clients": len(failures),
        "clients_with_holes": holes,
        "repeats": repeats,
        "out_of_order": out_of_order,
        "server_cpu_s": round(storm_cpu, 2),
        "queries": sum(storm_queries.values()),
        "queries_per_client": round(sum(storm_queries.values()) / opts.clients, 2),
        "queries_by_kind": dict(sorted(storm_queries.items(), key=lambda kv: -kv[1])),
        "queries_until_rows_settled": sum(settled_queries.values()),
        "connection_rows": rows,
        "startup_queries": sum(before_counts.values()),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def diff(after: dict, before: dict) -> dict:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


async def connection_rows(db: Path, server: Server, expected: int, timeout: float) -> int:
    """Connection rows of the restarted server (the newest ServerInstance), waiting for ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        con = sqlite3.connect(db, timeout=10)
        try:
            (count,) = con.execute(
                "SELECT count(*) FROM realtime_connection WHERE server_id = "
                "(SELECT id FROM realtime_serverinstance ORDER BY started_at DESC LIMIT 1)"
            ).fetchone()
        finally:
            con.close()
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.1)


def summary(runs: list[dict]) -> dict:
    def spread(key: str) -> str:
        values = [r[key] for r in runs if r[key] is not None]
        if not values:
            return "-"
        return " / ".join(str(v) for v in values) + f" (median {statistics.median(values)})"

    keys = ("all_caught_up_s", "storm_s_from_port_open", "client_resume_p99_s", "queries", "queries_per_client")
    return {key: spread(key) for key in keys + ("server_cpu_s",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100, help="the clients sign in as these many users, in turn")
    parser.add_argument("--before", type=int, default=20, help="publications every client receives before the restart")
    parser.add_argument("--during", type=int, default=20, help="publications stored while the server is down")
    parser.add_argument("--pad", type=int, default=100, help="characters of padding per publication")
    parser.add_argument("--stop", choices=("kill", "term"), default="kill")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds the storm may take before it counts as failed"
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy the restarted server during the storm, to this file")
    parser.add_argument("--output", type=Path, help="also write the runs (and their spread) here, as JSON")
    opts = parser.parse_args()
    raise_nofile()
    if can_pin():
        os.sched_setaffinity(0, {LOADGEN_CORE})
    runs = []
    for _ in range(opts.runs):
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(storm(opts, Path(tmp)))
        print(json.dumps(result, indent=2), flush=True)
        runs.append(result)
    spread = {"runs": len(runs), **summary(runs)}
    if len(runs) > 1:
        print(json.dumps(spread, indent=2))
    if opts.output is not None:
        opts.output.write_text(json.dumps({"runs": runs, "spread": spread}, indent=2))
    ok = all(
        r["all_caught_up_s"] is not None
        and r["all_caught_up_s"] <= 10
        and r["clients_with_holes"] == 0
        and r["failed_clients"] == 0
        for r in runs
    )
    print("target (all resumed, nothing lost, within 10 s of the restart):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
