"""Calls gathered into one call on the consumers' database thread.

All consumers of a process share one database thread (``database_sync_to_async``
is thread-sensitive), so a burst of connections, a reconnect storm after a
restart, queues a thousand small queries there. A ``Coalescer`` turns the calls
that arrive while the thread is busy into one call of ``func(key, items)``,
which returns one result per item, in order: an exception as a result is raised
to that caller alone; an exception raised by ``func`` is raised to every caller.
A group holds at most ``limit`` items (500: under SQLite's 999 parameters a
query for one ``IN`` list); more start the next group.

A group is sent to the database thread when its first caller comes, and takes
callers until that thread starts it: a caller that comes later is in the next
group, so every caller is answered by a call that started after it asked, and
a lone caller's call is queued exactly where a direct call would have been.
With ``wait_turn``, the group first waits its turn on that thread (an empty
hop) before it is sent: the callers whose own work was queued there before it
(the policy check of their ``subscribe``) have joined by then, which a read
whose callers come in a burst wants more than the hop costs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from typing import Any

from channels.db import database_sync_to_async


def _turn() -> None:
    """Nothing: awaiting it waits for what the database thread had queued before."""


class Coalescer:
    def __init__(self, func: Callable[[Any, list], list], *, limit: int = 500, wait_turn: bool = False) -> None:
        self.func = func
        self.limit = limit
        self.wait_turn = wait_turn
        # Groups that still take callers, per (event loop, key). Callers join on
        # their loop, the database thread closes a group: hence the lock.
        self._open: dict[tuple, list[tuple[Any, asyncio.Future]]] = {}
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()  # kept from the garbage collector

    async def __call__(self, key: Hashable, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        where = (loop, key)
        with self._lock:
            open_group = self._open.get(where)
            new = open_group is None or len(open_group) >= self.limit
            group = self._open[where] = [] if open_group is None or new else open_group
            group.append((item, future))
        if new:
            task = loop.create_task(self._run(where, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self, where: tuple, group: list) -> None:
        try:
            if self.wait_turn:
                await database_sync_to_async(_turn)()
            results = await database_sync_to_async(self._call)(where, group)
        except BaseException as exc:  # a database error, or the loop going away (cancelled)
            self._close(where, group)
            for _, future in group:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(group, results, strict=True):
            if future.done():  # its caller was cancelled meanwhile
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _call(self, where: tuple, group: list) -> list:
        """On the database thread: close the group, then run it."""
        self._close(where, group)
        return self.func(where[1], [item for item, _ in group])

    def _close(self, where: tuple, group: list) -> None:
        with self._lock:
            if self._open.get(where) is group:
                del self._open[where]
