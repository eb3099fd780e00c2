"""py-spy of a real server while one client posts the publish-cost requests, phase by phase.

    .venv/bin/python -m bench.profile_server [--requests 1500] [--out DIR] [--top 40]

One ``manage.py runrealtime`` server (pinned like the benchmark's) on a fresh
SQLite copy; one keep-alive client posts ``--requests`` broadcasts, as many
single events (5 fingerprints) and ``--requests / 40`` lists of 500 events (50
fingerprints), the requests of ``bench.publish_cost``. Each phase is recorded
with ``py-spy record --gil`` (only the thread holding the GIL: where the CPU
goes) into ``DIR/<phase>.txt`` (collapsed stacks), and the functions with the
largest share of samples are printed with the server CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .publish_cost import Poster, event
from .servers import LOADGEN_CORE, ServerProcess, Variant, can_pin, prepare_template

BROADCAST = {"channel": "global", "message": {"type": "announcement", "message": "x"}}


def summary(path: Path, top: int) -> list[str]:
    """Inclusive share of samples per function (file name, no line), largest first."""
    shares: collections.Counter = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        seen = set()
        for frame in stack.split(";"):
            name, _, where = frame.partition(" (")
            key = f"{name} ({where.split(':')[0]})"
            if key not in seen:
                seen.add(key)
                shares[key] += int(count)
    return [f"{100 * n / total:5.1f}% {key}" for key, n in shares.most_common(top)] if total else []


async def phases(server: ServerProcess, out: Path, requests: int, top: int) -> None:
    poster = Poster(server.port, server.token("admin"))
    await poster.open()
    cases = [
        ("broadcast", lambda i: ("/api/realtime/broadcast/", BROADCAST), requests, 1),
        ("event", lambda i: ("/api/events/", event(i, 5)), requests, 1),
        ("list", lambda i: ("/api/events/", [event(i * 500 + j, 50) for j in range(500)]), max(1, requests // 40), 500),
    ]
    spy = str(Path(sys.executable).parent / "py-spy")
    for name, body, count, per in cases:
        for i in range(min(50, count)):  # warm up, unrecorded
            await poster.post(*body(i))
        record = [spy, "record", "-p", str(server.pid), "-r", "500", "--gil", "--nonblocking", "--format", "raw"]
        proc = subprocess.Popen(
            [*record, "-o", str(out / f"{name}.txt")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        await asyncio.sleep(1.0)  # py-spy attached
        cpu0, t0 = server.cpu(), time.perf_counter()
        for i in range(count):
            await poster.post(*body(i))
        cpu, wall = server.cpu() - cpu0, time.perf_counter() - t0
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        items = count * per
        print(f"\n== {name}: {cpu * 1000 / items:.3f} ms server CPU per item, {items / wall:.0f}/s (under py-spy)")
        print("\n".join(summary(out / f"{name}.txt", top)))
    poster.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=1500)
    p.add_argument("--out", type=Path, default=Path("bench/results/profile"))
    p.add_argument("--top", type=int, default=40)
    opts = p.parse_args(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    if can_pin():
        os.sched_setaffinity(0, {LOADGEN_CORE})
    tmp = Path(tempfile.mkdtemp(prefix="dexter-profile-"))
    try:
        template = prepare_template(tmp)
        server = ServerProcess(Variant("dexter", "dexter"), tmp, template, {"EVENTS_THROTTLE": "100000000/min"})
        server.start()
        try:
            asyncio.run(phases(server, opts.out, opts.requests, opts.top))
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
