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
    from realtime.delivery import Delivery
    from realtime.poller import Poller

    ring = Poller.ring

    def probed_ring(self, origin, channel, seq):
        RECORDS["ring"].append((channel, seq, time.time()))
        return ring(self, origin, channel, seq)

    # The store read runs on a thread: when it started there, and when the poller had it back.
    stored_after = publisher.stored_after
    started: list[float] = []

    def timed_stored_after(*args, **kwargs):
        started.append(time.time())
        return stored_after(*args, **kwargs)

    publisher.stored_after = timed_stored_after  # the hub looks it up at each call
    init = Poller.__init__

    def probed_init(self, server_id, subscribed, delivered_seq, read_after, put):
        async def timed_read(known):
            t0 = time.time()
            rows = await read_after(known)
            RECORDS["read"].append((t0, started[-1] if started else t0, time.time(), [(c, s) for c, s, _ in rows]))
            return rows

        init(self, server_id, subscribed, delivered_seq, timed_read, put)

    deliver = Delivery._deliver

    async def probed_deliver(self, channel, seq, text):
        RECORDS["deq"].append((channel, seq, time.time()))
        return await deliver(self, channel, seq, text)

    fan = Delivery._fan

    async def probed_fan(self, channel, seq, text):
        t0, cpu0 = time.time(), time.thread_time()
        await fan(self, channel, seq, text)
        # The loop thread's CPU time for it too: wall time far over it means the core was taken.
        cpu = time.thread_time() - cpu0
        RECORDS["fan"].append((channel, seq, t0, time.time(), len(self.subscribers.get(channel) or ()), cpu))

    Poller.ring, Poller.__init__ = probed_ring, probed_init  # type: ignore[method-assign]
    Delivery._deliver, Delivery._fan = probed_deliver, probed_fan  # type: ignore[method-assign]


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
