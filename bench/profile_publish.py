"""cProfile of the two hot publish endpoints, in-process, on a fresh migrated SQLite file.

    .venv/bin/python -m bench.profile_publish [--requests 500] [--top 25]

Runs ``POST /api/realtime/broadcast/`` (staff JWT) and ``POST /api/events/``
(one event, 5 fingerprints) through Django's request handler with the
project's middleware, the same view code the server runs (its thread hop and
socket I/O are not in it: the server-side figures are ``bench.publish_cost``).
Prints the CPU per request and the functions with the most cumulative CPU time
(the profiler's clock is ``time.process_time``).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    opts = parser.parse_args(argv)

    from .servers import dexter_env, prepare_template

    workdir = Path(tempfile.mkdtemp(prefix="dexter-profile-"))
    db = prepare_template(workdir)
    os.environ.update(dexter_env(db, {"EVENTS_THROTTLE": "100000000/min"}))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client
    from rest_framework_simplejwt.tokens import AccessToken

    token = str(AccessToken.for_user(User.objects.get(username="admin")))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    def broadcast(i: int):
        body = {"channel": "global", "message": {"type": "announcement", "message": "x", "i": i}}
        return client.post("/api/realtime/broadcast/", json.dumps(body), content_type="application/json")

    def event(i: int):
        body = {"title": f"TypeError {i % 5}", "culprit": "app.py in f", "level": "error"}
        return client.post("/api/events/", json.dumps(body), content_type="application/json")

    def events_list(i: int):
        body = [{"title": f"TypeError {j % 50}", "culprit": "app.py in f", "level": "error"} for j in range(500)]
        return client.post("/api/events/", json.dumps(body), content_type="application/json")

    cases = [("broadcast", broadcast, opts.requests), ("events", event, opts.requests)]
    cases.append(("a list of 500 events", events_list, max(1, opts.requests // 50)))
    for name, call, count in cases:
        for i in range(min(50, count)):  # warm up: imports, caches, the first connection
            assert call(i).status_code == 202
        # CPU time, not wall time: on a shared machine the wall clock counts other processes' turns.
        profile = cProfile.Profile(time.process_time)
        cpu0 = time.process_time()
        profile.enable()
        for i in range(count):
            call(i)
        profile.disable()
        cpu = (time.process_time() - cpu0) / count * 1000
        print(f"\n=== POST {name}: {cpu:.2f} ms CPU a request under cProfile ({count} requests)")
        cpu0 = time.process_time()
        for i in range(count):
            call(i)
        print(f"=== POST {name}: {(time.process_time() - cpu0) / count * 1000:.2f} ms CPU without profiler")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(opts.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
