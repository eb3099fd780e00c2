"""``python -m bench.probe runrealtime ...``: a Dexter server with timestamps on its delivery path.

The benchmark's ``--probe`` runs the server through this module instead of
``manage.py``: it wraps a few methods of the running hub (no change to the
code under test) and records, with ``time.time()``, for each publication
``(channel, seq)``: when a doorbell ring for it arrived, when the store read
that returned it started and ended (and how long it waited for the hub's
database thread), when the deliver loop took it, and when its fan-out to the
local sockets started and ended; also each layer message received (Redis)
and every garbage collection (``gc.callbacks``). The records go to
``$PROBE_OUT`` as one JSON document when the process exits.

The publisher process records its side (call, commit, return) the same way
(bench/publisher_proc.py), and the load generator each publication's first
and last receipt; bench/breakdown.py joins the three.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")

RECORDS: dict[str, list] = {"ring": [], "read": [], "deq": [], "fan": [], "layer": [], "gc": []}


def _wrap_hub() -> None:
    from realtime import publisher

    hub_cls = _hub_class()

    on_ring = hub_cls.on_ring

    def probed_on_ring(self, origin, channel, seq):
        RECORDS["ring"].append((channel, seq, time.time()))
        return on_ring(self, origin, channel, seq)

    db = hub_cls.db

    async def probed_db(self, func, *args):
        if func is not publisher.stored_after:
            return await db(self, func, *args)
        started: list[float] = []

        def timed(*a):
            started.append(time.time())
            return func(*a)

        t0 = time.time()
        rows = await db(self, timed, *args)
        t1 = time.time()
        RECORDS["read"].append((t0, started[0] if started else t0, t1, [(c, s) for c, s, _ in rows]))
        return rows

    deliver = hub_cls._deliver

    async def probed_deliver(self, channel, seq, text):
        RECORDS["deq"].append((channel, seq, time.time()))
        return await deliver(self, channel, seq, text)

    fan = hub_cls._fan

    async def probed_fan(self, channel, seq, text):
        t0 = time.time()
        await fan(self, channel, seq, text)
        RECORDS["fan"].append((channel, seq, t0, time.time(), len(self.subscribers.get(channel) or ())))

    hub_cls.on_ring, hub_cls.db, hub_cls._deliver, hub_cls._fan = probed_on_ring, probed_db, probed_deliver, probed_fan


def _hub_class():
    import importlib

    for name in ("realtime.hub", "realtime.hub.core", "realtime.delivery"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "Hub"):
            return module.Hub
    raise SystemExit("bench.probe: no Hub class found")


def _wrap_layer() -> None:
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:
        return
    receive = RedisChannelLayer.receive

    async def probed_receive(self, channel):
        message = await receive(self, channel)
        if message.get("type") == "rt.publish":
            RECORDS["layer"].append((message["channel"], message["seq"], time.time()))
        return message

    RedisChannelLayer.receive = probed_receive


_gc_start = [0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_start[0] = time.time()
    elif info.get("generation", 0) >= 1:
        RECORDS["gc"].append((_gc_start[0], time.time(), info.get("generation")))


def _dump() -> None:
    out = os.environ.get("PROBE_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(RECORDS, f)


def main() -> None:
    import django

    django.setup()
    _wrap_hub()
    _wrap_layer()
    gc.callbacks.append(_on_gc)
    atexit.register(_dump)
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
