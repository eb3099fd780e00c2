"""A publisher in a process of its own: ``publish()`` called from outside the server.

This is how a worker, a management command or a shell publishes: the message
is stored in that process's transaction, and the servers hear of it by their
doorbell (realtime/doorbell.py), the layer message with Redis, or at worst
their poller. The load generator drives it with one JSON line per phase on
stdin, ``{"phase": 2, "messages": 200, "rate": null}``, and reads
``{"done": 2}`` back.

With ``PROBE_PUBLISHER_OUT`` set (``bench.run --probe``) it also appends, per
publication, ``[phase, i, seq, called, committed, returned]`` (``time.time()``):
``committed`` is when the transaction's on-commit work (the doorbell) began.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")

import django  # noqa: E402

django.setup()

from realtime import publisher  # noqa: E402

CHANNEL = "global"


def _probe_commits() -> list[float]:
    """Record the time each publication's on-commit work starts (its commit has returned)."""
    commits: list[float] = []
    fan_out = publisher._fan_out

    def timed(*args, **kwargs):
        commits.append(time.time())
        return fan_out(*args, **kwargs)

    publisher._fan_out = timed
    return commits


def main() -> None:
    probe_out = os.environ.get("PROBE_PUBLISHER_OUT")
    commits = _probe_commits() if probe_out else []
    for line in sys.stdin:
        cmd = json.loads(line)
        phase, count, rate, pad = cmd["phase"], cmd["messages"], cmd.get("rate"), cmd.get("pad", "x")
        records = []
        t0 = time.time()
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            called = time.time()
            full = publisher.publish(
                CHANNEL, {"type": "announcement", "message": pad, "i": i, "p": phase, "t": round(called, 6)}
            )
            if probe_out:
                records.append([phase, i, full["seq"], called, commits[-1] if commits else called, time.time()])
        if probe_out:
            with open(probe_out, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in records)
        print(json.dumps({"done": phase}), flush=True)


if __name__ == "__main__":
    main()
