"""A publisher in a process of its own: ``publish()`` called from outside the server.

This is how a worker, a management command or a shell publishes: the message
is stored in that process's transaction, and the server's hub picks it up from
the store (the poller; one layer message per process with Redis). The load
generator drives it with one JSON line per phase on stdin,
``{"phase": 2, "messages": 200, "rate": null}``, and reads ``{"done": 2}`` back.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")

import django  # noqa: E402

django.setup()

from realtime.publisher import publish  # noqa: E402

CHANNEL = "global"


def main() -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        phase, count, rate, pad = cmd["phase"], cmd["messages"], cmd.get("rate"), cmd.get("pad", "x")
        t0 = time.time()
        for i in range(count):
            if rate:
                delay = t0 + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            publish(CHANNEL, {"type": "announcement", "message": pad, "i": i, "p": phase, "t": round(time.time(), 6)})
        print(json.dumps({"done": phase}), flush=True)


if __name__ == "__main__":
    main()
