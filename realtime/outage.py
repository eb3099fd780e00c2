"""One line when a dependency goes away, one when it is back, and backoff in between.

The channel layer (Redis) can vanish while the server keeps serving: the
poller delivers from the database meanwhile. What an operator needs then is
one warning that says so, not a traceback per retry per second, and one line
when it recovers. Retries back off exponentially from 1 s to
``REALTIME_LAYER_RETRY_MAX`` seconds (default 30); the retries in between are
DEBUG lines.
"""

from __future__ import annotations

import logging
import threading
import time

from . import conf


class Outage:
    def __init__(self, what: str, logger: logging.Logger, consequence: str = "") -> None:
        self.what = what
        self.logger = logger
        self.consequence = consequence
        self.since: float | None = None  # time.monotonic() of the first failure
        self.failures = 0
        self._lock = threading.Lock()  # the hub's loop and request threads both report

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException) -> float:
        """Report a failure; returns how long to wait before the next try."""
        with self._lock:
            first = self.since is None
            if first:
                self.since = time.monotonic()
            self.failures += 1
            failures = self.failures
        cap = float(conf.get("REALTIME_LAYER_RETRY_MAX"))
        delay = min(cap, 2.0 ** min(failures - 1, 16))
        reason = f"{type(exc).__name__}: {exc}"
        if first:
            self.logger.warning(
                "%s unreachable (%s)%s; retrying with backoff up to %gs", self.what, reason, self.consequence, cap
            )
        else:
            self.logger.debug("%s still unreachable (%s); retry %d in %gs", self.what, reason, failures, delay)
        return delay

    def succeeded(self) -> None:
        if self.since is None:
            return
        with self._lock:
            since, failures = self.since, self.failures
            self.since, self.failures = None, 0
        if since is not None:
            self.logger.info("%s is back after %.0fs (%d failed tries)", self.what, time.monotonic() - since, failures)
