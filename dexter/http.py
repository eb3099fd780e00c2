"""Django's ASGI handler, run the way a WSGI worker runs it: one thread hop per request.

Stock ``ASGIHandler`` under Django 5.2 costs about 10 ms of CPU for a small API
POST on these machines (``bench/README.md``), four times the same request run
synchronously, for three reasons:

- With any sync-only middleware in the list (WhiteNoise), the chain switches
  between the event loop and a thread several times per request, and every
  ``MiddlewareMixin`` running in async mode hops to a thread for each of its
  ``process_request`` / ``process_response``.
- ``ThreadSensitiveContext`` gives every request a new thread, so persistent
  database connections (``CONN_MAX_AGE``) are never reused: each request opens
  its database again (Django ticket #33497).
- Around the chain it hops to a thread twice more (``request_started`` sent
  with ``asend``, ``response.close()`` with ``sync_to_async``) and runs two
  tasks per request (the view and a disconnect listener).

Here a request is served in one hop: on one of ``DEXTER_HTTP_THREADS``
long-lived threads, ``request_started`` is sent, the request built, the
middleware chain run synchronously (views and middleware run as under WSGI)
and a non-streaming response closed (``request_finished``), so the signals'
``close_old_connections`` acts on the thread that holds the connection, as it
does for a WSGI worker, and those threads keep their connections between
requests. The loop then sends the response. A streaming response is sent by
the loop as Django's handler sends it and closed on a worker afterwards.
Async views still work (Django adapts them with ``async_to_sync``), and the
WebSocket side is untouched. A client that disconnects mid-request is not
listened for: a sync view cannot be interrupted in its thread anyway, and the
answer to a closed connection is dropped by the server.

A job runs in its worker thread's own context, not in a copy of the loop's,
so the thread keeps its context variables from one request to the next, as a
WSGI worker thread does. Django keeps per-thread state that is meant to last
in ``asgiref.local.Local`` objects, which are context variables: the cache
backends (``django.core.cache.caches``) among them. In a fresh copy per
request every request built its cache backend again (with the rest of the
per-request copying, 40-50 us of a worker's CPU an event POST; bench/README.md,
issue 13, seventh round), and with Redis a new client and connection pool, so
a new Redis connection per request. What must not pass from one request to
the next is reset per request, as under WSGI: the script prefix (set below),
the URLconf (``request_finished``), the active language and time zone
(activated by their middleware for each request when used; none is in the
chain), and the project's own context variable, ``issues.actor``, which is set
and reset around each write. A view that sets a context variable and leaves it
set leaves it to the thread's next request, as a thread-local would under
WSGI: set them with a reset (``ContextVar.reset``, a ``with`` block). The
loop's context is not seen by a view: nothing on the loop side sets a variable
a view reads (the request travels in ``scope``).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

DEFAULT_HTTP_THREADS = 4


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Workers:
    """Long-lived threads running one call each at a time; ``run`` is awaited on the loop.

    Lighter than ``sync_to_async`` on a ``ThreadPoolExecutor`` (a lock-free
    queue, no per-call thread accounting), and the threads live for the process.
    """

    def __init__(self, threads: int, name: str = "dexter-http") -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for thread in self.threads:
            thread.start()

    def run(self, func, *args) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, func, args))
        return future

    def _work(self) -> None:
        while True:
            loop, future, func, args = self._jobs.get()
            try:
                # In this thread's own context, kept between jobs (the module's docstring says why).
                result, error = func(*args), None
            except BaseException as exc:  # handed to the awaiting request
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:  # the loop closed while we worked: nobody waits
                pass


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int | None = None) -> None:
        if threads is None:
            threads = int(os.environ.get("DEXTER_HTTP_THREADS") or DEFAULT_HTTP_THREADS)
        if threads < 1:
            raise ValueError("DEXTER_HTTP_THREADS must be at least 1")
        self.workers = Workers(threads)
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # No ThreadSensitiveContext: it would give each request a thread of its own.
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await self.workers.run(self.serve, scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await self.workers.run(response.close)
        finally:
            body_file.close()

    def serve(self, scope, body_file):
        """One request, start to close, on a worker thread: what a WSGI worker does."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            # Its content is all in memory: closing it now sends request_finished on this thread.
            response.close()
        return response


def get_http_application() -> PooledASGIHandler:
    import django

    django.setup(set_prefix=False)
    return PooledASGIHandler()
