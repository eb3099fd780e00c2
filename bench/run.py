"""``python -m bench.run``: fan-out benchmark of Dexter against raw websockets and vanilla Channels.

For every server variant: start it pinned to one core, connect ``--clients``
authenticated sockets that subscribe to ``global``, then publish ``--messages``
publications (~130 bytes on the wire) at ``--rate`` per second ("steady") and
again as fast as the publisher goes ("full"). Each publication carries its send
time; each client records its latency, and the table reports loss, latency,
delivered messages per second, server CPU per delivered message, bytes per
delivered message and server memory per idle connection, with ratios against
the raw and the Channels reference. ``--idle N`` then holds N idle
authenticated connections on Dexter with the heartbeat running.

Dexter's publisher is the real path: ``POST /api/realtime/broadcast/`` as a
staff user, so the publication is stored in the server's database and handed
to its hub in the same process, and the request's own cost is part of the
server CPU measured. The reference servers take the publication over a
WebSocket from the same publisher.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import breakdown
from .client import WIRE, BenchClient, Closed, open_client
from .servers import (
    LOADGEN_CORE,
    ROOT,
    ServerProcess,
    Variant,
    can_pin,
    prepare_template,
    raise_nofile,
    variants,
)
from .services import Services

RESULTS = ROOT / "bench" / "results"
CHANNEL = "global"
# Seconds between a client's pings: a third of Dexter's default heartbeat interval
# (30 s), so no socket goes silent for the 2 x 30 s that closes it with 4408.
PING_INTERVAL = 10.0
# Keeps the frame at ~130 bytes once the server adds channel, seq and ts.
PAD = "x"


# --- recording ------------------------------------------------------------------


class Recorder:
    """Deliveries per phase: count, latency of each, time of the last one."""

    def __init__(self) -> None:
        self.count: dict[int, int] = {}
        self.latency: dict[int, list[float]] = {}
        self.last_at: dict[int, float] = {}
        self.frame_sizes: list[int] = []
        # (phase, i) -> [first receipt, last receipt, count]: bench/breakdown.py's client side.
        self.receipts: dict[tuple[int, int], list] = {}

    def on_message(self, msg: dict) -> None:
        if msg.get("type") == "batch":
            for m in msg["messages"]:
                self.on_message(m)
            return
        phase = msg.get("p")
        if phase is None:
            return
        now = time.time()
        self.count[phase] = self.count.get(phase, 0) + 1
        self.latency.setdefault(phase, []).append(now - msg["t"])
        self.last_at[phase] = now
        seen = self.receipts.get((phase, msg.get("i")))
        if seen is None:
            self.receipts[(phase, msg.get("i"))] = [now, now, 1]
        else:
            seen[1] = now
            seen[2] += 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- publishers -------------------------------------------------------------------


def message(i: int, phase: int) -> dict:
    return {"type": "announcement", "message": PAD, "i": i, "p": phase, "t": round(time.time(), 6)}


class HttpPublisher:
    """POST /api/realtime/broadcast/ over one keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def publish(self, msg: dict) -> None:
        try:
            await self._post(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed an idle keep-alive connection: nothing was read, post again.
            self.close()
            await self.open()
            await self._post(msg)

    async def _post(self, msg: dict) -> None:
        body = json.dumps({"channel": CHANNEL, "message": msg}).encode()
        head = (
            f"POST /api/realtime/broadcast/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = status_head.split(" ", 2)[1]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in status_head.split("\r\n")[1:])
        }
        if "content-length" in headers:
            await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        if status != "202":
            raise RuntimeError(f"broadcast refused: HTTP {status}")
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
            await self.open()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class WsPublisher:
    """The reference servers' publisher: a socket that sends ``publish`` frames."""

    def __init__(self, port: int, compression: bool) -> None:
        self.port = port
        self.compression = compression
        self.client: BenchClient | None = None

    async def open(self) -> None:
        self.client = await open_client("127.0.0.1", self.port, "/ws/publisher/", compression=self.compression)

    async def publish(self, msg: dict) -> None:
        self.client.send_json({"type": "publish", "message": msg})

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


# --- profiling (py-spy, pinned in requirements-dev.txt) ---------------------------


def start_profiler(server: ServerProcess, directory: Path | None, suffix: str = ""):
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{server.variant.name}{suffix}.txt"
    cmd = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "-r", "200"]
    cmd += ["--nonblocking", "-o", str(out), "--pid", str(server.pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(proc) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


class ProcessPublisher:
    """Dexter's other real path: ``publish()`` in another process (bench/publisher_proc.py)."""

    def __init__(self, env: dict) -> None:
        self.env = env
        self.proc = None

    async def open(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.publisher_proc",
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def publish_many(self, phase: int, count: int, rate: float | None) -> None:
        self.proc.stdin.write(
            json.dumps({"phase": phase, "messages": count, "rate": rate, "pad": PAD}).encode() + b"\n"
        )
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if json.loads(line).get("done") != phase:
            raise RuntimeError(f"publisher process said {line!r}")

    async def publish(self, msg: dict) -> None:
        await self.publish_many(msg["p"], 1, None)

    def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.stdin.close()
            self.proc.kill()


# --- one variant --------------------------------------------------------------------


async def connect_all(
    server: ServerProcess,
    n: int,
    tokens: list[str],
    recorder: Recorder | None,
    *,
    subscribe: bool = True,
    prefix: str = "bench",
    concurrency: int = 64,
    ping_interval: float = PING_INTERVAL,
    first: int = 0,
    skim: bool = False,
) -> tuple[list[BenchClient], float, asyncio.Task]:
    variant = server.variant
    sem = asyncio.Semaphore(concurrency)
    clients: list[BenchClient | None] = [None] * n
    pinger = asyncio.ensure_future(keep_alive(clients, ping_interval))

    async def one(i: int) -> None:
        params = []
        if tokens:
            params.append(f"token={tokens[(first + i) % len(tokens)]}")
        if variant.batch:
            params.append("batch=1")
        path = f"/ws/{prefix}-{first + i}/" + ("?" + "&".join(params) if params else "")
        async with sem:
            for attempt in range(5):
                try:
                    clients[i] = await open_client(
                        "127.0.0.1",
                        server.port,
                        path,
                        compression=variant.compression,
                        on_message=recorder.on_message if recorder else None,
                        subscribe=CHANNEL if subscribe else None,
                        timeout=120,
                        skim=skim,
                    )
                    return
                except (TimeoutError, Closed, OSError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))

    start = time.monotonic()
    try:
        await asyncio.gather(*(one(i) for i in range(n)))
    except BaseException:
        pinger.cancel()
        raise
    return clients, time.monotonic() - start, pinger


async def connect_halves(server: ServerProcess, n: int, tokens: list[str], recorder, **kwargs):
    """Connect ``n`` sockets in two halves, reading the server's RSS in between.

    Memory per connection is the slope over the second half, (RSS(n) - RSS(n/2)) / (n/2):
    what one more connection costs, without the one-time growth of the first ones
    (thread pools, database caches, interpreter free lists), for every server alike.
    """
    half = n // 2
    a, t1, p1 = await connect_all(server, half, tokens, recorder, **kwargs)
    await asyncio.sleep(1.0)
    rss_half = server.rss_kb()
    b, t2, p2 = await connect_all(server, n - half, tokens, recorder, first=half, **kwargs)
    return a + b, t1 + t2, [p1, p2], rss_half


async def keep_alive(clients: list, interval: float) -> None:
    """Ping every client once per ``interval``, spread out, as the protocol asks (section 6).

    ``clients`` may still be filling up: sockets are pinged from the moment they connect.
    """
    step = 0.1
    i = 0
    while True:
        await asyncio.sleep(step)
        live = [c for c in clients if c is not None]
        if not live:
            continue
        for _ in range(max(1, round(len(live) * step / interval))):
            i = (i + 1) % len(live)
            live[i].send_json({"type": "ping", "timestamp": "2026-11-25T12:00:00Z"})


async def run_phase(
    server: ServerProcess,
    publishers: list,
    recorder: Recorder,
    phase: int,
    n_clients: int,
    n_messages: int,
    rate: float | None,
    drain_timeout: float,
) -> dict:
    """Publish ``n_messages`` (at ``rate``/s, or as fast as possible), wait for delivery, measure."""
    expected = n_clients * n_messages
    cpu0, wire0, threads0 = server.cpu(), WIRE["bytes"], server.cpu_by_thread()
    t0 = time.time()
    if hasattr(publishers[0], "publish_many"):
        await publishers[0].publish_many(phase, n_messages, rate)
    elif rate:
        pub = publishers[0]
        for i in range(n_messages):
            delay = t0 + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await pub.publish(message(i, phase))
    else:
        counter = iter(range(n_messages))

        async def pump(pub) -> None:
            for i in counter:
                await pub.publish(message(i, phase))

        await asyncio.gather(*(pump(p) for p in publishers))
    published_at = time.time()
    deadline = published_at + drain_timeout
    while recorder.count.get(phase, 0) < expected and time.time() < deadline:
        await asyncio.sleep(0.01)
    end = time.time()
    cpu = server.cpu() - cpu0
    threads = {k: round(v - threads0[k], 3) for k, v in server.cpu_by_thread().items()}
    delivered = recorder.count.get(phase, 0)
    last = recorder.last_at.get(phase, end)
    lat = recorder.latency.get(phase, [])
    duration = max(1e-6, (last if delivered >= expected else end) - t0)
    return {
        "published": n_messages,
        "publish_seconds": round(published_at - t0, 3),
        "expected": expected,
        "delivered": delivered,
        "lost": expected - delivered,
        "duration_s": round(duration, 3),
        "delivered_per_s": round(delivered / duration, 1),
        "cpu_s": round(cpu, 3),
        "cpu_s_by_thread": threads,
        "cpu_us_per_msg": round(cpu * 1e6 / delivered, 2) if delivered else None,
        "wire_bytes_per_msg": round((WIRE["bytes"] - wire0) / delivered, 1) if delivered else None,
        "latency_ms": {
            "p50": round(percentile(lat, 0.50) * 1000, 2),
            "p90": round(percentile(lat, 0.90) * 1000, 2),
            "p99": round(percentile(lat, 0.99) * 1000, 2),
            "max": round(max(lat) * 1000, 2) if lat else None,
            "mean": round(statistics.fmean(lat) * 1000, 2) if lat else None,
        },
    }


async def bench_variant(server: ServerProcess, opts) -> dict:
    variant = server.variant
    tokens: list[str] = []
    if variant.dexter:
        tokens = [server.token("alice"), server.token("bob")]
        if variant.external:
            publishers = [ProcessPublisher(server.env)]
        else:
            publishers = [HttpPublisher(server.port, server.token("admin")) for _ in range(opts.publishers)]
    elif variant.http:
        # The same publishers, keep-alive POSTs, against the reference's bare HTTP port.
        publishers = [HttpPublisher(server.http_port, "-") for _ in range(opts.publishers)]
    else:
        publishers = [WsPublisher(server.port, variant.compression)]
    for pub in publishers:
        await pub.open()

    # Warm up: the first socket starts Dexter's hub and imports what a connection needs.
    warm = Recorder()
    warm_clients, _, warm_pinger = await connect_all(server, 1, tokens, warm, prefix="warm")
    await publishers[0].publish(message(0, 0))
    for _ in range(500):
        if warm.count.get(0):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)
    rss0 = server.rss_kb()

    recorder = Recorder()
    profiler = start_profiler(server, opts.profile, "-connect")
    cpu0 = server.cpu()
    clients, connect_s, pingers, rss_half = await connect_halves(server, opts.clients, tokens, recorder)
    connect_cpu = server.cpu() - cpu0
    stop_profiler(profiler)
    await asyncio.sleep(1.0)
    rss1 = server.rss_kb()
    # The load generator's own full collections (its heap holds every client)
    # would stall its reading for tens of ms and count as server latency.
    gc.collect()
    gc.freeze()

    result = {
        "variant": variant.name,
        "server": variant.kind,
        "compression": variant.compression,
        "compression_negotiated": all(c.compressed_ok for c in clients) if variant.compression else False,
        "batch": variant.batch,
        "server_cpus": sorted(os.sched_getaffinity(server.pid)),
        "loadgen_cpus": sorted(os.sched_getaffinity(0)),
        "publisher": "process" if variant.external else ("http" if variant.dexter or variant.http else "websocket"),
        "clients": opts.clients,
        "connect_s": round(connect_s, 3),
        "connect_cpu_ms_per_conn": round(connect_cpu * 1000 / opts.clients, 2),
        "rss_before_kb": rss0,
        "rss_after_kb": rss1,
        "rss_half_kb": rss_half,
        "kb_per_conn": round((rss1 - rss_half) / (opts.clients - opts.clients // 2), 2),
        "kb_per_conn_incl_warmup": round((rss1 - rss0) / opts.clients, 2),
    }
    if opts.warmup and variant.kind != "channels":
        # Unmeasured: the first thousands of receipts of a run cost the load
        # generator more (its heap and buffers grow), whichever server goes first.
        # Vanilla Channels gets none: it cannot keep up at --rate, and the backlog
        # would spill into its steady phase.
        await run_phase(server, publishers[:1], recorder, 3, opts.clients, opts.warmup, opts.rate, opts.drain_timeout)
    result["steady"] = await run_phase(
        server, publishers[:1], recorder, 1, opts.clients, opts.steady_messages, opts.rate, opts.drain_timeout
    )
    profiler = start_profiler(server, opts.profile)
    result["full"] = await run_phase(
        server, publishers, recorder, 2, opts.clients, opts.messages, None, opts.drain_timeout
    )
    stop_profiler(profiler)
    result["_receipts"] = recorder.receipts  # bench/breakdown.py's, removed before the JSON
    result["closed_by_server"] = sum(1 for c in clients if c.closed)
    for task in [*pingers, warm_pinger]:
        task.cancel()
    for c in [*clients, *warm_clients]:
        c.close()
    for pub in publishers:
        pub.close()
    await asyncio.sleep(0.2)
    gc.unfreeze()
    return result


async def bench_idle(server: ServerProcess, opts) -> dict:
    """Hold ``--idle`` authenticated sockets, pinging every heartbeat interval, and measure memory."""
    tokens = [server.token("alice"), server.token("bob")]
    interval = opts.heartbeat
    warm, _, warm_pinger = await connect_all(server, 1, tokens, None, subscribe=False, prefix="warm")
    await asyncio.sleep(0.5)
    rss0 = server.rss_kb()
    # Each client pings once per heartbeat interval, as the protocol asks.
    clients, connect_s, pingers, rss_half = await connect_halves(
        server, opts.idle, tokens, None, subscribe=False, prefix="idle", ping_interval=interval
    )
    await asyncio.sleep(1.0)
    rss1 = server.rss_kb()
    cpu0 = server.cpu()
    await asyncio.sleep(opts.idle_hold)
    hold_cpu = server.cpu() - cpu0
    rss2 = server.rss_kb()
    for task in [*pingers, warm_pinger]:
        task.cancel()
    still_open = sum(1 for c in clients if not c.closed)
    for c in [*clients, *warm]:
        c.close()
    return {
        "variant": server.variant.name,
        "connections": opts.idle,
        "connect_s": round(connect_s, 2),
        "heartbeat_interval_s": interval,
        "hold_s": opts.idle_hold,
        "still_open": still_open,
        "rss_before_kb": rss0,
        "rss_after_kb": rss2,
        "kb_per_conn": round((rss1 - rss_half) / (opts.idle - opts.idle // 2), 2),
        "kb_per_conn_incl_warmup": round((rss1 - rss0) / opts.idle, 2),
        "kb_per_conn_after_hold": round((rss2 - rss_half) / (opts.idle - opts.idle // 2), 2),
        "hold_cpu_percent": round(100 * hold_cpu / opts.idle_hold, 1),
    }


# --- report -------------------------------------------------------------------------


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def table(results: list[dict], idle: dict | None) -> str:
    """One row per variant. CPU/raw compares the full-speed phase; CPU/raw-http the same
    for the rows published over HTTP, against raw fed over a bare HTTP port (the same
    publishers, so the same pacing); CPU/chan the steady phase, the only one in which
    vanilla Channels delivers anything at N = 1,000."""
    by = {r["variant"]: r for r in results}
    raw, chan, raw_http = by.get("raw"), by.get("channels"), by.get("raw-http")
    http_ref = raw_http and raw_http["full"]["cpu_us_per_msg"]
    cols = (
        "server",
        "conn s",
        "KB/conn",
        "steady lost",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p99/raw",
        "steady CPU us/msg",
        "CPU/chan",
        "full msg/s",
        "full lost",
        "full CPU us/msg",
        "CPU/raw",
        "CPU/raw-http",
        "B/msg",
    )

    def num(value, fmt="{:.1f}") -> str:
        return "-" if value is None else fmt.format(value)

    rows = [cols]
    for r in results:
        s, f = r["steady"], r["full"]
        lat = s["latency_ms"]
        rows.append(
            (
                r["variant"],
                num(r["connect_s"], "{:.2f}"),
                num(r["kb_per_conn"]),
                str(s["lost"]),
                num(lat["p50"]),
                num(lat["p90"]),
                num(lat["p99"]),
                num(lat["max"]),
                ratio(lat["p99"], raw and raw["steady"]["latency_ms"]["p99"]),
                num(s["cpu_us_per_msg"]),
                ratio(s["cpu_us_per_msg"], chan and chan["steady"]["cpu_us_per_msg"]),
                num(f["delivered_per_s"], "{:.0f}"),
                str(f["lost"]),
                num(f["cpu_us_per_msg"]),
                ratio(f["cpu_us_per_msg"], raw and raw["full"]["cpu_us_per_msg"]),
                ratio(f["cpu_us_per_msg"], r["publisher"] == "http" and http_ref),
                num(f["wire_bytes_per_msg"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    out = "\n".join(lines)
    if idle and "error" in idle:
        out += f"\n\nidle: {idle['connections']} connections on {idle['variant']} FAILED: {idle['error']}"
    elif idle:
        out += (
            f"\n\nidle: {idle['variant']} held {idle['still_open']}/{idle['connections']} connections for "
            f"{idle['hold_s']} s (heartbeat {idle['heartbeat_interval_s']} s), "
            f"connect {idle['connect_s']} s, {idle['kb_per_conn']} KB/conn "
            f"({idle['kb_per_conn_after_hold']} after the hold), server CPU {idle['hold_cpu_percent']}% while idle"
        )
    return out


def machine() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pinned": can_pin(),
        "loadavg_at_start": os.getloadavg(),
    }


def available_stores(opts) -> tuple[str, ...]:
    """The --stores rows whose programs are installed (PostgreSQL's initdb, redis-server)."""
    wanted = [s.strip() for s in opts.stores.split(",") if s.strip()]
    have_pg = bool(shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    have_redis = bool(shutil.which("redis-server"))
    out = []
    for store in wanted:
        if store not in ("pg", "pg-redis"):
            raise SystemExit(f"--stores: unknown {store!r} (pg, pg-redis)")
        if not have_pg or (store == "pg-redis" and not have_redis):
            print(f"note: skipping the dexter-ext-{store} row (PostgreSQL or Redis is not installed)", file=sys.stderr)
            continue
        out.append(store)
    return tuple(out)


def run_publish_cost(workdir: Path, template: Path, opts) -> dict:
    """The publish-cost row (bench/publish_cost.py) on a server of its own."""
    from .publish_cost import measure

    server = ServerProcess(
        Variant("dexter", "dexter"), workdir, template, {"EVENTS_THROTTLE": "100000000/min"}, label="dexter-cost"
    )
    print(f"== publish cost: {opts.cost_requests} broadcasts, as many events, {opts.cost_batches} lists", flush=True)
    try:
        server.start()
        return asyncio.run(measure(server, opts))
    except Exception as exc:  # keep the other rows: report the failure instead
        return {"error": repr(exc)}
    finally:
        server.stop()


def cost_table(cost: dict | None) -> str:
    if not cost:
        return ""
    if "error" in cost:
        return f"\npublish cost: failed: {cost['error']}\n"
    return (
        f"\npublish cost (server CPU, one keep-alive client, sequential): broadcast POST {cost['broadcast_cpu_ms']} ms "
        f"({cost['broadcast_per_s']}/s); one event a POST {cost['event_cpu_ms']} ms ({cost['events_per_s_single']}/s); "
        f"lists of {cost['batch_size']}: {cost['batch_event_cpu_ms']} ms an event, {cost['events_per_s_batched']} "
        f"events/s; {cost['events_stored']}/{cost['events_sent']} events stored, "
        f"{cost['issues_announced_with_final_count']}/{cost['issues']} issues announced with their final count\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=1000, help="subscribers per server (default 1000)")
    p.add_argument("--messages", type=int, default=200, help="publications of the full-speed phase (default 200)")
    p.add_argument("--rate", type=float, default=20.0, help="publications per second, steady phase (default 20)")
    p.add_argument(
        "--steady-messages",
        type=int,
        default=600,
        help="publications of the steady phase (default 600: 30 s at 20/s, so p99 is not two publications' worth)",
    )
    p.add_argument(
        "--warmup", type=int, default=60, help="unmeasured publications at --rate before the steady phase (default 60)"
    )
    p.add_argument(
        "--servers",
        default="dexter,uvicorn,raw,raw-http,channels",
        help="comma list of dexter,uvicorn,raw,raw-http,channels",
    )
    p.add_argument("--compression", choices=["off", "on", "both"], default="both", help="permessage-deflate variants")
    p.add_argument("--batch", choices=["off", "on", "both"], default="both", help="Dexter ?batch=1 variants")
    p.add_argument(
        "--publisher",
        choices=["http", "process", "both"],
        default="both",
        help="Dexter's publisher: POST /api/realtime/broadcast/ (http) and/or publish() in another process",
    )
    p.add_argument(
        "--stores",
        default="pg,pg-redis",
        help="process-publisher rows on PostgreSQL: pg (NOTIFY doorbell, no Redis), pg-redis (empty: none)",
    )
    p.add_argument("--publishers", type=int, default=2, help="concurrent HTTP publishers for Dexter's full phase")
    p.add_argument("--drain-timeout", type=float, default=15.0, help="seconds to wait for delivery after publishing")
    p.add_argument("--idle", type=int, default=0, help="also hold N idle authenticated connections on Dexter")
    p.add_argument("--idle-hold", type=float, default=25.0, help="seconds to hold the idle connections")
    p.add_argument("--heartbeat", type=float, default=10.0, help="WEBSOCKET_HEARTBEAT_INTERVAL for the idle run")
    p.add_argument("--profile", type=Path, default=None, help="py-spy the full phase into DIR")
    p.add_argument(
        "--cost-requests",
        type=int,
        default=500,
        help="broadcasts and single events of the publish-cost row (0: skip)",
    )
    p.add_argument("--cost-batches", type=int, default=40, help="event lists of the publish-cost row")
    p.add_argument("--cost-batch-size", type=int, default=500, help="events per list (ISSUES_EVENTS_BATCH_LIMIT: 1000)")
    p.add_argument(
        "--probe",
        action="store_true",
        help="process-publisher rows: timestamps along the delivery path (bench/probe.py, bench/breakdown.py)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (server logs, databases)")
    p.add_argument("--quick", action="store_true", help="a small run for CI: 20 clients, 20 messages, 4 servers")
    p.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/<time>.json)")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.clients, opts.messages, opts.rate, opts.warmup = 20, 20, 50.0, 5
        opts.steady_messages = 20
        opts.servers, opts.compression, opts.batch = "dexter,raw,raw-http,channels", "off", "off"
        opts.publisher = "http"
        opts.drain_timeout = 10.0
        opts.cost_requests, opts.cost_batches, opts.cost_batch_size = 20, 2, 100
        opts.stores = ""
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    hard = raise_nofile()
    if opts.idle and hard < opts.idle + 1000:
        print(f"warning: RLIMIT_NOFILE hard limit {hard} is below --idle {opts.idle}", file=sys.stderr)
    if can_pin():
        os.sched_setaffinity(0, {LOADGEN_CORE})
    else:
        print("warning: fewer than 2 cores: server and load generator are not pinned", file=sys.stderr)
    info = machine()
    kinds = [s.strip() for s in opts.servers.split(",") if s.strip()]
    rows: list[Variant] = variants(kinds, opts.compression, opts.batch, opts.publisher, available_stores(opts))
    results: list[dict] = []
    idle = cost = None
    tmp = tempfile.mkdtemp(prefix="dexter-bench-")
    try:
        workdir = Path(tmp)
        template = prepare_template(workdir) if any(v.dexter for v in rows) or opts.idle else None
        services = Services(workdir)
        for variant in rows:
            server = ServerProcess(variant, workdir, template, services=services, probe=opts.probe)
            print(
                f"== {variant.name}: {opts.clients} clients, {opts.steady_messages} steady + {opts.messages} full",
                flush=True,
            )
            try:
                server.start()
                results.append(asyncio.run(bench_variant(server, opts)))
            finally:
                server.stop()
            r = results[-1]
            receipts = r.pop("_receipts", {})
            if opts.probe and variant.external:
                try:  # a fault of the probe's must not cost the run its figures
                    r["breakdown"] = {
                        phase: breakdown.from_files(server.probe_out, server.publisher_probe_out, receipts, number)
                        for phase, number in (("steady", 1), ("full", 2))
                    }
                    print(breakdown.table(f"   {variant.name} steady", r["breakdown"]["steady"]), flush=True)
                except Exception as exc:
                    r["breakdown"] = {"error": repr(exc)}
            print(
                f"   steady lost {r['steady']['lost']} p99 {r['steady']['latency_ms']['p99']} ms; "
                f"full {r['full']['delivered_per_s']} msg/s lost {r['full']['lost']} "
                f"CPU {r['full']['cpu_us_per_msg']} us/msg; {r['kb_per_conn']} KB/conn",
                flush=True,
            )
        if opts.cost_requests and template is not None:
            cost = run_publish_cost(workdir, template, opts)
        if opts.idle:
            server = ServerProcess(
                Variant("dexter", "dexter"),
                workdir,
                template,
                {"WEBSOCKET_HEARTBEAT_INTERVAL": str(opts.heartbeat)},
                label="dexter-idle",
            )
            print(f"== idle: {opts.idle} connections on dexter", flush=True)
            try:
                server.start()
                idle = asyncio.run(bench_idle(server, opts))
            except Exception as exc:  # keep the other rows: report the failure instead
                idle = {"variant": "dexter", "connections": opts.idle, "error": repr(exc)}
            finally:
                server.stop()
    finally:
        if "services" in locals():
            services.stop()
        if opts.keep:
            print(f"work directory kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report = table(results, idle) + cost_table(cost)
    print()
    print(report)
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**info, "loadavg_at_end": os.getloadavg()},
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "results": results,
        "idle": idle,
        "publish_cost": cost,
        "table": report,
    }
    out = opts.output or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2))
    print(f"\nJSON: {out}")
    total_lost = sum(r["steady"]["lost"] + r["full"]["lost"] for r in results if r["server"] != "channels")
    total_lost += (cost or {}).get("lost", 0)
    return 0 if total_lost == 0 and not (idle and "error" in idle) and not (cost and "error" in cost) else 1


if __name__ == "__main__":
    sys.exit(main())
