"""One thread runs every trailing count flush of the process, at its time (issues/events.py).

A timer thread per flush opened, and closed, a database connection for each
(SQLite's connect and PRAGMAs included): with a few busy issues that was a
tenth of the server CPU of ingestion. This thread keeps its connection while
flushes keep coming, and ends when none has been due for ``linger`` seconds.
It is not a daemon on purpose: a short-lived process (a shell, a command)
waits for its last flush before exiting instead of dropping it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class Flusher:
    def __init__(self, run: Callable[[int], None], linger: Callable[[], float], name: str = "issues-flush") -> None:
        self._run, self._linger, self._name = run, linger, name
        self._due: list[tuple[float, int]] = []
        self._pending: set[int] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, key: int, delay: float) -> bool:
        """Run ``run(key)`` in ``delay`` seconds, unless ``key`` is already waiting (False)."""
        with self._cond:
            if key in self._pending:
                return False
            self._pending.add(key)
            heapq.heappush(self._due, (time.monotonic() + max(0.0, delay), key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name)
                self._thread.start()
            else:
                self._cond.notify()
        return True

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def _next(self) -> int | None:
        """The next key when it is due; None when nothing came for ``linger`` seconds (the thread ends)."""
        with self._cond:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                if self._due:
                    at, key = self._due[0]
                    if at <= now:
                        heapq.heappop(self._due)
                        self._pending.discard(key)
                        return key
                    self._cond.wait(at - now)
                    idle_since = time.monotonic()
                    continue
                left = idle_since + self._linger() - now
                if left <= 0:
                    self._thread = None
                    return None
                self._cond.wait(left)

    def _loop(self) -> None:
        from django.db import close_old_connections, connection

        try:
            while (key := self._next()) is not None:
                close_old_connections()
                self._run(key)
        finally:
            connection.close()
