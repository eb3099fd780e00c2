"""``python -m bench.slow_reader``: one client that never reads must not hurt the others.

Two runs on one fresh Dexter server each (daphne, SQLite, publications from
``publish()`` in another process at a steady rate): ``--clients`` normal
subscribers alone, then the same plus one subscriber that stops reading right
after it subscribed (its socket's reading paused, so the kernel's buffers fill
and the server is left holding what it writes). Each run first sends
``--warmup`` unmeasured publications, before the slow one connects, so neither
run pays the load generator's own warm-up. Reported for each run: what the
normal ones lost (must be nothing), their latency percentiles, and the server's
RSS at the start of publishing and its peak during it (sampled every 50 ms).
The targets (issue 10): nothing lost, p99 with the slow reader within 1.5x of
the run without it, RSS peak minus start under 50 MB; the figures measured so
far, and what they do not show, are in bench/README.md ("Slow reader").
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .client import open_client
from .run import CHANNEL, ProcessPublisher, Recorder, connect_all, percentile
from .servers import ServerProcess, Variant, prepare_template, raise_nofile

PHASE = 7
WARMUP_PHASE = 8


async def sample_rss(server: ServerProcess, out: list[int]) -> None:
    while True:
        out.append(server.rss_kb())
        await asyncio.sleep(0.05)


async def publish(publisher: ProcessPublisher, phase: int, count: int, rate: float, pad: str) -> None:
    publisher.proc.stdin.write(
        json.dumps({"phase": phase, "messages": count, "rate": rate, "pad": pad}).encode() + b"\n"
    )
    await publisher.proc.stdin.drain()
    await publisher.proc.stdout.readline()


async def delivered(recorder: Recorder, phase: int, expected: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while recorder.count.get(phase, 0) < expected and time.time() < deadline:
        await asyncio.sleep(0.05)


async def one_run(server: ServerProcess, opts, slow: bool) -> dict:
    tokens = [server.token("alice"), server.token("bob")]
    recorder = Recorder()
    clients, _, pinger = await connect_all(server, opts.clients, tokens, recorder, prefix="normal", skim=True)
    publisher = ProcessPublisher(server.env)
    await publisher.open()
    pad = "x" * opts.size
    if opts.warmup:
        # Unmeasured, before the slow one connects: the first thousands of receipts cost
        # the load generator more (its heap and buffers grow), whichever run goes first.
        await publish(publisher, WARMUP_PHASE, opts.warmup, opts.rate, pad)
        await delivered(recorder, WARMUP_PHASE, opts.clients * opts.warmup, opts.drain_timeout)
    slow_client = None
    if slow:
        slow_client = await open_client("127.0.0.1", server.port, "/ws/slow-0/", subscribe=CHANNEL)
        # A stalled phone: a small receive window, and it never reads again.
        slow_client.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow_client.transport.pause_reading()
    gc.collect()
    gc.freeze()
    await asyncio.sleep(1.0)
    rss: list[int] = []
    start_kb = server.rss_kb()
    sampler = asyncio.ensure_future(sample_rss(server, rss))
    t0 = time.time()
    await publish(publisher, PHASE, opts.publications, opts.rate, pad)
    expected = opts.clients * opts.publications
    await delivered(recorder, PHASE, expected, opts.drain_timeout)
    sampler.cancel()
    lat = recorder.latency.get(PHASE, [])
    slow_closed = None
    if slow_client is not None:
        slow_client.transport.resume_reading()  # to see whether the server closed it
        for _ in range(100):
            if slow_client.closed:
                break
            await asyncio.sleep(0.05)
        slow_closed = slow_client.closed
    # A normal subscriber the server closed (4500: it fell a buffer behind) loses the rest.
    closed = Counter(str(c.close_code) for c in clients if c.closed)
    result = {
        "slow_reader": slow,
        "normal_clients": opts.clients,
        "publications": opts.publications,
        "publication_bytes": opts.size,
        "published_mb": round(opts.publications * opts.size / 1e6, 1),
        "seconds": round(time.time() - t0, 1),
        "expected": expected,
        "delivered": recorder.count.get(PHASE, 0),
        "lost": expected - recorder.count.get(PHASE, 0),
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "rss_start_mb": round(start_kb / 1024, 1),
        "rss_peak_mb": round(max(rss or [start_kb]) / 1024, 1),
        "rss_growth_mb": round((max(rss or [start_kb]) - start_kb) / 1024, 1),
        "slow_reader_closed_by_server": slow_closed,
        "slow_reader_close_code": slow_client.close_code if slow_client is not None else None,
        "normal_closed_by_code": dict(closed),
        "load_average": os.getloadavg()[0],
    }
    pinger.cancel()
    for c in clients:
        c.close()
    if slow_client is not None:
        slow_client.close()
    publisher.close()
    gc.unfreeze()
    return result


async def main_async(opts) -> list[dict]:
    raise_nofile()
    workdir = Path(tempfile.mkdtemp(prefix="dexter-slow-reader-"))
    template = prepare_template(workdir)
    results = []
    for slow in (False, True):
        variant = Variant("dexter-slow" if slow else "dexter-normal", "dexter", external=True)
        server = ServerProcess(variant, workdir, template).start()
        try:
            results.append(await one_run(server, opts, slow))
        finally:
            server.stop()
        print(json.dumps(results[-1]), flush=True)
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.slow_reader", description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=999, help="normal subscribers (default 999)")
    p.add_argument("--publications", type=int, default=1600, help="publications (default 1600)")
    p.add_argument("--size", type=int, default=62500, help="bytes of each publication's text (default 62500)")
    p.add_argument("--rate", type=float, default=20.0, help="publications per second (default 20)")
    p.add_argument(
        "--warmup", type=int, default=40, help="unmeasured publications before the slow one connects (default 40)"
    )
    p.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for delivery")
    p.add_argument("--output", type=Path, help="JSON file for both runs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results = asyncio.run(main_async(opts))
    normal, slow = results
    ratio = slow["p99_ms"] / normal["p99_ms"] if normal["p99_ms"] else float("nan")
    verdict = {
        "nothing_lost": normal["lost"] == 0 and slow["lost"] == 0,
        "p99_ratio": round(ratio, 2),
        "p99_within_1_5x": ratio <= 1.5,
        "rss_growth_under_50mb": slow["rss_growth_mb"] < 50,
    }
    print(json.dumps(verdict))
    if opts.output:
        opts.output.write_text(json.dumps({"runs": results, "verdict": verdict}, indent=2))
    return 0 if all(v for k, v in verdict.items() if k != "p99_ratio") else 1


if __name__ == "__main__":
    sys.exit(main())
