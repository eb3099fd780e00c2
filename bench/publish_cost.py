"""What getting a message *into* Dexter costs: server CPU per request on the two hot endpoints.

One Dexter server (pinned like the others), no subscribers but one socket on
``issues`` that checks delivery. Over one keep-alive connection, sequentially:

- ``--cost-requests`` broadcast POSTs: server CPU (utime + stime, all threads) per POST;
- the same number of single-event ``POST /api/events/`` (5 fingerprints): CPU per event;
- ``--cost-batches`` lists of ``--cost-batch-size`` events (50 fingerprints): CPU per
  event and events/s into the process (wall time of the POSTs).

Then "nothing lost": the summed ``event_count`` of the issues is every event
sent, and for every issue the last ``issue_update`` the socket received
(``created`` or, after the coalescing window's trailing flush, ``updated``)
carries its stored count.

Alone (the same row as ``bench.run`` prints, without the fan-out rows)::

    .venv/bin/python -m bench.publish_cost [--cost-requests 500] [--cost-batches 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .client import open_client
from .servers import ServerProcess

FINGERPRINTS_SINGLE = 5
FINGERPRINTS_BATCH = 50
# ISSUES_COUNT_COALESCE_SECONDS is 1: the trailing flushes are out 1 s after the last bump.
FLUSH_WAIT = 10.0


class Poster:
    """JSON POSTs over one keep-alive HTTP/1.1 connection; returns the parsed answer."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader = self.writer = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def post(self, path: str, body) -> object:
        data = json.dumps(body).encode()
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status = head.split(" ", 2)[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head.split("\r\n")[1:])}
        raw = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if status != "202":
            raise RuntimeError(f"POST {path}: HTTP {status} {raw[:200]!r}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def event(i: int, fingerprints: int) -> dict:
    return {"title": f"TypeError {i % fingerprints}", "culprit": "app.py in f", "level": "error"}


async def measure(server: ServerProcess, opts) -> dict:
    token = server.token("admin")
    poster = Poster(server.port, token)
    await poster.open()
    last_update: dict[str, int] = {}

    def on_message(msg: dict) -> None:
        if msg.get("type") == "issue_update":
            last_update[msg["issue_id"]] = msg["data"]["event_count"]

    watcher = await open_client(
        "127.0.0.1", server.port, f"/ws/cost/?token={token}", on_message=on_message, subscribe="issues"
    )
    n, batches, size = opts.cost_requests, opts.cost_batches, opts.cost_batch_size
    broadcast = {"channel": "global", "message": {"type": "announcement", "message": "x"}}
    for i in range(50):  # warm up both endpoints, unmeasured
        await poster.post("/api/realtime/broadcast/", broadcast)
        await poster.post("/api/events/", event(i, FINGERPRINTS_SINGLE))
    sent = 50
    out: dict = {"requests": n, "batches": batches, "batch_size": size}

    cpu0, t0, loop0 = server.cpu(), time.perf_counter(), server.cpu_by_thread()["loop"]
    for _ in range(n):
        await poster.post("/api/realtime/broadcast/", broadcast)
    out["broadcast_cpu_ms"] = round((server.cpu() - cpu0) * 1000 / n, 3)
    # Of which the event loop's thread (HTTP parsing, the ASGI glue, the answer; the rest is the view's worker).
    out["broadcast_loop_cpu_ms"] = round((server.cpu_by_thread()["loop"] - loop0) * 1000 / n, 3)
    out["broadcast_per_s"] = round(n / (time.perf_counter() - t0), 1)

    cpu0, t0, loop0 = server.cpu(), time.perf_counter(), server.cpu_by_thread()["loop"]
    for i in range(n):
        await poster.post("/api/events/", event(i, FINGERPRINTS_SINGLE))
    sent += n
    out["event_cpu_ms"] = round((server.cpu() - cpu0) * 1000 / n, 3)
    out["event_loop_cpu_ms"] = round((server.cpu_by_thread()["loop"] - loop0) * 1000 / n, 3)
    out["events_per_s_single"] = round(n / (time.perf_counter() - t0), 1)

    cpu0, t0 = server.cpu(), time.perf_counter()
    for b in range(batches):
        await poster.post("/api/events/", [event(b * size + i, FINGERPRINTS_BATCH) for i in range(size)])
    sent += batches * size
    wall = time.perf_counter() - t0
    out["batch_event_cpu_ms"] = round((server.cpu() - cpu0) * 1000 / (batches * size), 4)
    out["events_per_s_batched"] = round(batches * size / wall, 1)

    # Nothing lost: every count stored, and the last announcement of each issue carries it.
    deadline = time.monotonic() + FLUSH_WAIT
    stored: dict[str, int] = {}
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        stored = await asyncio.to_thread(_stored_counts, server)
        if stored and all(last_update.get(k) == v for k, v in stored.items()):
            break
    out["events_sent"] = sent
    out["events_stored"] = sum(stored.values())
    out["issues"] = len(stored)
    out["issues_announced_with_final_count"] = sum(1 for k, v in stored.items() if last_update.get(k) == v)
    out["lost"] = (sent - out["events_stored"]) + (out["issues"] - out["issues_announced_with_final_count"])
    watcher.close()
    poster.close()
    return out


def _stored_counts(server: ServerProcess) -> dict[str, int]:
    import sqlite3

    db = server.env["DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db, timeout=20) as conn:
        return {str(pk): n for pk, n in conn.execute("SELECT id, event_count FROM issues_issue")}


def main(argv: list[str] | None = None) -> int:
    from .run import cost_table, run_publish_cost
    from .servers import LOADGEN_CORE, can_pin, prepare_template

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cost-requests", type=int, default=500)
    p.add_argument("--cost-batches", type=int, default=40)
    p.add_argument("--cost-batch-size", type=int, default=500)
    p.add_argument("--runs", type=int, default=1, help="measure this many times, each on a fresh server")
    p.add_argument("--output", type=Path, default=None, help="also write the figures as JSON here")
    opts = p.parse_args(argv)
    if can_pin():
        os.sched_setaffinity(0, {LOADGEN_CORE})
    tmp = Path(tempfile.mkdtemp(prefix="dexter-cost-"))
    runs = []
    try:
        template = prepare_template(tmp)
        for _ in range(opts.runs):
            runs.append(run_publish_cost(tmp, template, opts))
            print(cost_table(runs[-1]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if opts.output:
        opts.output.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": runs}))
    return 0 if all("error" not in r and r["lost"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
