"""The chaos test's publisher: a separate process committing ``publish()`` at a steady rate.

    python -m tests.integration.chaos_publisher OUT RATE CHANNEL [CHANNEL ...]

Round-robin over the channels, one publication per transaction, until SIGTERM.
After each commit it appends ``channel seq n`` to OUT (flushed), so OUT is the
list of what was committed, against which every client's receipts are checked.
A publication whose transaction failed is not in OUT and is tried again.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

logger = logging.getLogger("chaos.publisher")


def main(out_path: str, rate: float, channels: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dexter.settings")
    import django

    django.setup()
    from django.db import transaction

    from realtime.publisher import publish

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    period = 1.0 / rate
    n = 0
    next_at = time.monotonic()
    with open(out_path, "a", buffering=1) as out:
        while not stopping:
            channel = channels[n % len(channels)]
            try:
                with transaction.atomic():
                    sent = publish(channel, {"type": "chaos", "n": n})
            except Exception:
                logger.warning("publication %d on %s failed; trying again", n, channel, exc_info=True)
                time.sleep(0.1)
                continue
            out.write(f"{channel} {sent['seq']} {n}\n")
            n += 1
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()  # fell behind (a stall): keep the rate, do not burst
    print(f"published {n}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], float(sys.argv[2]), sys.argv[3:]))
