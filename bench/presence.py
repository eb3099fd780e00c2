"""Channel presence benchmark: 100 users join and leave one issue channel that 1,000 others watch.

    .venv/bin/python -m bench.presence                      # what bench/README.md reports
    .venv/bin/python -m bench.presence --watchers 50 --joiners 5   # a quick look
    .venv/bin/python -m bench.presence --runs 3             # three runs and their spread

One Dexter server (``manage.py runrealtime`` on a fresh SQLite file, pinned to
core 0 where it can be) and this load generator. ``--watchers`` sockets (one
user, so one member with that many connections) subscribe to ``issue:<id>``
with ``presence: true``; then each of ``--joiners`` users, one after the other,
subscribes with presence (a join) and unsubscribes (a leave). For every join
and leave, the latency is, for each watcher, the time from the joiner's frame
going out to that watcher's ``channel_presence_diff`` naming the joiner.

Database writes are counted by SQLite triggers the benchmark adds to every
table of the database before the server starts: one count per row inserted,
updated or deleted, per table, read before and after the join/leave phase (the
joiners are connected before it, so their connection rows are not counted).
The report gives the server's CPU per change, and the machine's load and the
other processes' CPU during the phase, since this machine is shared.
``--profile DIR`` records the server with py-spy (requirements-dev.txt) during
the join/leave phase into DIR/presence.txt (collapsed stacks, one line a stack).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import websockets

from .client import open_client
from .servers import ROOT, _child_setup, cpu_seconds, dexter_env, free_port

SETUP = """
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import AccessToken
from issues.models import Issue
users = [User.objects.create_user("watcher")] + [User.objects.create_user(f"j{{n}}") for n in range({joiners})]
issue = Issue.objects.create(title="Worked on by everyone")
import json
print(json.dumps({{"issue": issue.pk, "tokens": [str(AccessToken.for_user(u)) for u in users]}}))
"""


def add_write_counters(db: Path) -> None:
    con = sqlite3.connect(db)
    tables = [
        name
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    con.execute("CREATE TABLE bench_writes (tbl TEXT, op TEXT, n INTEGER, PRIMARY KEY (tbl, op))")
    for table in tables:
        for op in ("INSERT", "UPDATE", "DELETE"):
            con.execute("INSERT INTO bench_writes VALUES (?, ?, 0)", (table, op))
            con.execute(
                f"CREATE TRIGGER bench_{table}_{op.lower()} AFTER {op} ON {table} FOR EACH ROW BEGIN "
                f"UPDATE bench_writes SET n = n + 1 WHERE tbl = '{table}' AND op = '{op}'; END"
            )
    con.commit()
    con.close()


def read_writes(db: Path) -> dict[str, int]:
    con = sqlite3.connect(db)
    try:
        return {f"{t}.{op}": n for t, op, n in con.execute("SELECT tbl, op, n FROM bench_writes")}
    finally:
        con.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def main_async(opts) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "presence.sqlite3"
        env = dexter_env(db, {"WEBSOCKET_HEARTBEAT_INTERVAL": "600", "WEBSOCKET_MESSAGE_RATE": "100000"})
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [*manage, "shell", "-c", SETUP.format(joiners=opts.joiners)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        setup = json.loads(out.strip().splitlines()[-1])
        add_write_counters(db)
        channel = f"issue:{setup['issue']}"
        watcher_token, joiner_tokens = setup["tokens"][0], setup["tokens"][1:]
        port = free_port()
        log = open(Path(tmp) / "server.log", "wb")
        server = subprocess.Popen(
            [*manage, "runrealtime", "-b", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        try:
            return await run(opts, port, db, channel, watcher_token, joiner_tokens, server)
        finally:
            server.terminate()
            server.wait(20)
            log.close()


async def run(opts, port, db, channel, watcher_token, joiner_tokens, server) -> dict:
    base = f"ws://127.0.0.1:{port}/ws"
    deadline = time.monotonic() + 30
    while True:
        try:
            probe = await websockets.connect(f"{base}/probe/")
            await probe.close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start") from None
            await asyncio.sleep(0.2)

    # Who is waiting for what: (user_id, "join"|"leave") -> set of watcher indexes still to hear it.
    waiting: dict[tuple[str, str], dict] = {}
    latencies = {"join": [], "leave": []}

    def on_message(index: int, msg: dict) -> None:
        if msg.get("type") != "channel_presence_diff":
            return
        now = time.perf_counter()
        for kind, entries in (("join", msg["joins"]), ("leave", msg["leaves"])):
            for entry in entries:
                wait = waiting.get((entry["user_id"], kind))
                if wait is not None and index in wait["left"]:
                    wait["left"].discard(index)
                    latencies[kind].append((now - wait["sent"]) * 1000)
                    if not wait["left"]:
                        wait["done"].set()

    connect_started = time.monotonic()
    sem = asyncio.Semaphore(32)

    async def open_watcher(n: int):
        # bench/client.py's lean socket, as the fan-out benchmark's: the load
        # generator's own parsing must not be what is measured.
        async with sem:
            client = await open_client(
                "127.0.0.1", port, f"/ws/w{n}/?token={watcher_token}", on_message=lambda m: on_message(n, m)
            )
            snapshot = client.expect("channel_presence")
            client.send_json({"type": "subscribe", "channel": channel, "presence": True})
            await asyncio.wait_for(snapshot, 120)
            return client

    watchers = await asyncio.gather(*(open_watcher(n) for n in range(opts.watchers)))
    joiners = []
    for n, token in enumerate(joiner_tokens):
        ws = await websockets.connect(f"{base}/j{n}/?token={token}")
        hello = json.loads(await ws.recv())
        joiners.append((ws, hello["user"]["id"]))
    connect_s = time.monotonic() - connect_started
    await asyncio.sleep(1)  # the connects' own writes are done before counting starts

    before = read_writes(db)
    cpu_before = cpu_seconds(server.pid)
    machine_before, load_before = machine_cpu(), os.getloadavg()[0]
    profiler = start_profiler(opts.profile, server.pid)
    lost = 0
    phase_started = time.perf_counter()
    for ws, user_id in joiners:
        for kind, frame in (
            ("join", {"type": "subscribe", "channel": channel, "presence": True}),
            ("leave", {"type": "unsubscribe", "channel": channel}),
        ):
            wait = {"left": set(range(len(watchers))), "done": asyncio.Event(), "sent": time.perf_counter()}
            waiting[(user_id, kind)] = wait
            await ws.send(json.dumps(frame))
            try:
                await asyncio.wait_for(wait["done"].wait(), opts.timeout)
            except TimeoutError:
                lost += len(wait["left"])
            del waiting[(user_id, kind)]
    cpu = cpu_seconds(server.pid) - cpu_before
    machine = machine_cpu()
    busy = (machine[0] - machine_before[0]) / max(1e-9, machine[1] - machine_before[1])
    load_after = os.getloadavg()[0]
    stop_profiler(profiler)
    await asyncio.sleep(1)
    after = read_writes(db)
    writes = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    changes = 2 * len(joiners)
    member_writes = sum(v for k, v in writes.items() if k.startswith("realtime_channelmember."))
    phase_s = time.perf_counter() - phase_started
    for client in watchers:
        client.close()
    for ws, _ in joiners:
        await ws.close()
    all_ms = latencies["join"] + latencies["leave"]
    return {
        "watchers": len(watchers),
        "joiners": len(joiners),
        "connect_s": round(connect_s, 2),
        "diffs_delivered": len(all_ms),
        "diffs_lost": lost,
        "p50_ms": round(pct(all_ms, 50), 1),
        "p99_ms": round(pct(all_ms, 99), 1),
        "max_ms": round(max(all_ms), 1),
        "mean_ms": round(statistics.fmean(all_ms), 1),
        "join_p99_ms": round(pct(latencies["join"], 99), 1),
        "leave_p99_ms": round(pct(latencies["leave"], 99), 1),
        "server_cpu_ms_per_change": round(cpu * 1000 / changes, 2),
        "writes_per_change": round(sum(writes.values()) / changes, 2),
        "channelmember_writes_per_change": round(member_writes / changes, 2),
        "row_writes_by_table": writes,
        # The shared machine during the phase: its cores' busy share (all processes), the
        # server's share of one core, and the load average at the start and the end.
        "phase_s": round(phase_s, 1),
        "machine_busy_pct": round(busy * 100, 1),
        "server_core_pct": round(cpu / phase_s * 100, 1),
        "loadavg": [round(load_before, 2), round(load_after, 2)],
    }


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return float(sum(fields) - idle), float(sum(fields))


def start_profiler(directory: Path | None, pid: int):
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "-r", "250", "--nonblocking"]
    cmd += ["--threads", "-o", str(directory / "presence.txt"), "--pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(proc) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--joiners", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one diff at every watcher")
    parser.add_argument("--runs", type=int, default=1, help="run it N times, each on a fresh server and database")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the join/leave phase into DIR")
    opts = parser.parse_args()
    from .servers import raise_nofile

    raise_nofile()
    results = []
    for n in range(opts.runs):
        result = asyncio.run(main_async(opts))
        results.append(result)
        print(json.dumps({"run": n + 1, **result}, indent=2), flush=True)
    if len(results) > 1:
        keys = ("p50_ms", "p99_ms", "max_ms", "server_cpu_ms_per_change", "writes_per_change", "machine_busy_pct")
        print("spread:", json.dumps({k: [r[k] for r in results] for k in keys}))
    ok = all(r["p99_ms"] < 100 and r["diffs_lost"] == 0 and r["writes_per_change"] <= 1 for r in results)
    print("target (p99 < 100 ms to all, nothing lost, <= 1 write per join/leave):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
