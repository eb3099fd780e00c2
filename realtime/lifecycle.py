"""The end of a server process: a clean shutdown on SIGTERM / Ctrl-C, then the server's own handler.

Daphne alone drops sockets without a close frame and cancels disconnect
handlers, so presence would leak: on a signal the hub closes every socket with
4503 and clears its rows first (``shutdown``, handed in), bounded in time, then
the signal goes on to the handler it replaced. Also the GC freeze of a server
process's start-up heap.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from types import FrameType
from typing import Any

# What signal.getsignal() returns: a handler, SIG_DFL / SIG_IGN, or None (not set from Python).
Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

logger = logging.getLogger("realtime.hub")  # a part of the hub: its lines keep the hub's name

# A locked database must not keep a stopping server alive.
SHUTDOWN_TIMEOUT = 10.0


class SignalShutdown:
    """Runs ``shutdown()`` on SIGTERM (and Ctrl-C), then hands the signal to the server's handler.

    ``stopping`` tells whether the hub is stopping already (a second signal
    stops at once), ``begin`` marks it stopping from the signal handler itself,
    before the loop gets to ``shutdown``; ``count`` is its connections, for the log.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        shutdown: Callable[[], Awaitable[None]],
        stopping: Callable[[], bool],
        begin: Callable[[], None],
        count: Callable[[], int],
    ) -> None:
        self.loop = loop
        self.shutdown = shutdown
        self.stopping = stopping
        self.begin = begin
        self.count = count

    def install(self) -> None:
        """Checked under daphne 4.2.3: Twisted installs its handlers when the reactor
        starts, so they are ``previous`` here, and its reactor.stop() runs after
        our cleanup (clients see 4503, the rows are gone before exit).
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            try:
                signal.signal(signum, partial(self._on_signal, previous))
            except ValueError:  # not the main thread: leave signals to the server
                logger.debug("not installing signal handlers outside the main thread")
                return

    def _on_signal(self, previous: Handler, signum: int, frame: FrameType | None) -> None:
        if self.stopping():  # a second signal: stop now, as the server would have
            self.loop.call_soon_threadsafe(chain_signal, previous, signum)
            return
        logger.info("%s: closing %d connections with 4503", signal.Signals(signum).name, self.count())
        self.begin()
        self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._shutdown_then(previous, signum)))

    async def _shutdown_then(self, previous: Handler, signum: int) -> None:
        try:
            await asyncio.wait_for(self.shutdown(), timeout=SHUTDOWN_TIMEOUT)
        except Exception:
            logger.exception("realtime shutdown did not finish cleanly")
        chain_signal(previous, signum)


def chain_signal(previous: Handler, signum: int) -> None:
    """Let the handler we replaced (Twisted's, uvicorn's, or the default) act on the signal."""
    if callable(previous):
        previous(signum, None)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def freeze_gc() -> None:
    """Move the start-up heap out of the collector's sight: full collections then
    walk only what serving created. Only in a server process (tests and shells
    keep the collector as is)."""
    gc.collect()
    gc.freeze()
