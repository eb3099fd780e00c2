"""Routing by interest (realtime/interest.py): layer messages per publication across server processes.

    .venv/bin/python -m bench.interest [--servers 4] [--channels 4000] [--publications 400]

``--servers`` Dexter processes on one SQLite file and one Redis; ``--channels``
``issue:<id>`` channels, each subscribed on exactly one process (clients of 100
subscriptions each, spread evenly); ``--publications`` from a process of
their own (``publish()`` in ``manage.py shell``, as a worker would), on
channels picked round-robin. Each server counts the ``rt.publish`` messages
its layer brought (``layer_publications`` in its stats). Before interest
routing every publication went to every process through ``rt.fanout``: one
message per process, ``--servers`` per publication. The figure is a count,
not a time, so the load of a shared machine does not change it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .client import open_client
from .servers import ROOT, ServerProcess, Variant, dexter_env, prepare_template
from .services import Services

SUBSCRIPTIONS_PER_CLIENT = 100

MAKE_ISSUES = """
from issues.models import Issue
Issue.objects.bulk_create([Issue(title=f"bench {{i}}", fingerprint=f"bench-{{i}}") for i in range({n})], batch_size=500)
print(",".join(str(pk) for pk in Issue.objects.order_by("pk").values_list("pk", flat=True)))
"""

PUBLISH = """
import sys
from realtime.publisher import publish
ids = {ids!r}
for i in range({n}):
    publish(f"issue:{{ids[i % len(ids)]}}", {{"type": "announcement", "message": "x", "i": i}})
"""


def stats(server: ServerProcess, token: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}/api/realtime/stats/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["this_process"]


def shell(env: dict, code: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


async def run(opts, workdir: Path, services: Services) -> dict:
    template = prepare_template(workdir)
    db = workdir / "shared.sqlite3"
    db.write_bytes(template.read_bytes())
    extra = {
        "DATABASE_URL": f"sqlite:///{db}",
        "REDIS_URL": services.redis_url(),
        "WEBSOCKET_MESSAGE_RATE": "100000",
        "REALTIME_POLL_INTERVAL": "3600",  # count the layer's messages alone
    }
    env = dexter_env(db, extra)
    ids = [int(x) for x in shell(env, MAKE_ISSUES.format(n=opts.channels)).strip().splitlines()[-1].split(",")]
    servers = [
        ServerProcess(Variant("dexter", "dexter"), workdir, template, extra, label=f"dexter-interest-{i}")
        for i in range(opts.servers)
    ]
    received = {"n": 0}

    def on_message(msg: dict) -> None:
        if msg.get("type") == "announcement":
            received["n"] += 1

    clients = []
    try:
        for server in servers:
            server.start()
        token = servers[0].token("admin")
        per_server = len(ids) // opts.servers
        for s, server in enumerate(servers):
            mine = ids[s * per_server : (s + 1) * per_server]
            for c in range(0, len(mine), SUBSCRIPTIONS_PER_CLIENT):
                client = await open_client(
                    "127.0.0.1", server.port, f"/ws/interest-{s}-{c}/?token={token}", on_message=on_message
                )
                for channel_id in mine[c : c + SUBSCRIPTIONS_PER_CLIENT]:
                    client.send_json({"type": "subscribe", "channel": f"issue:{channel_id}"})
                clients.append(client)
            deadline = time.monotonic() + 180
            while len(stats(server, token)["subscriptions"]) < len(mine) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # the joins of the last subscriptions reach Redis
        before = [stats(server, token)["layer_publications"] for server in servers]
        t0 = time.monotonic()
        # Interleaved, so consecutive publications go to channels of different processes.
        order = [ids[s * per_server + k] for k in range(per_server) for s in range(opts.servers)]
        await asyncio.to_thread(shell, env, PUBLISH.format(ids=order, n=opts.publications))
        deadline = time.monotonic() + 30
        while received["n"] < opts.publications and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        per_server_msgs = [
            stats(server, token)["layer_publications"] - b for server, b in zip(servers, before, strict=True)
        ]
        return {
            "servers": opts.servers,
            "channels": per_server * opts.servers,
            "publications": opts.publications,
            "delivered": received["n"],
            "lost": opts.publications - received["n"],
            "layer_messages_per_server": per_server_msgs,
            "layer_messages_per_publication": round(sum(per_server_msgs) / opts.publications, 3),
            "layer_messages_per_publication_rt_fanout": opts.servers,
            "seconds": round(time.monotonic() - t0, 2),
        }
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.interest", description=__doc__.split("\n\n")[0])
    p.add_argument("--servers", type=int, default=4)
    p.add_argument("--channels", type=int, default=4000)
    p.add_argument("--publications", type=int, default=400)
    p.add_argument("--output", type=Path, default=None)
    opts = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dexter-interest-"))
    services = Services(workdir)
    try:
        result = asyncio.run(run(opts, workdir, services))
    finally:
        services.stop()
    print(json.dumps(result, indent=2))
    if opts.output:
        opts.output.write_text(json.dumps(result, indent=2))
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
