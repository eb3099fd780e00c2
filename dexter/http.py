"""Django's ASGI handler, run the way a WSGI worker runs it: one thread hop per request.

Stock ``ASGIHandler`` under Django 5.2 costs about 10 ms of CPU for a small API
POST on these machines (``bench/README.md``), four times the same request run
synchronously, for two reasons:

- With any sync-only middleware in the list (WhiteNoise), the chain switches
  between the event loop and a thread several times per request, and every
  ``MiddlewareMixin`` running in async mode hops to a thread for each of its
  ``process_request`` / ``process_response``.
- ``ThreadSensitiveContext`` gives every request a new thread, so persistent
  database connections (``CONN_MAX_AGE``) are never reused: each request opens
  its database again (Django ticket #33497).

Here the middleware chain is built synchronously (views and middleware run as
under WSGI) and each request runs it on one of ``DEXTER_HTTP_THREADS``
long-lived threads, which keep their connections between requests; before and
after each request stale connections are closed there, as ``request_started``
and ``request_finished`` do for a WSGI worker. Async views still work (Django
adapts them with ``async_to_sync``), and the WebSocket side is untouched.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections
from django.urls import set_urlconf

DEFAULT_HTTP_THREADS = 4


class PooledASGIHandler(ASGIHandler):
    def __init__(self, threads: int | None = None) -> None:
        if threads is None:
            threads = int(os.environ.get("DEXTER_HTTP_THREADS") or DEFAULT_HTTP_THREADS)
        if threads < 1:
            raise ValueError("DEXTER_HTTP_THREADS must be at least 1")
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dexter-http")
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain = self._middleware_chain

        def run(request):
            set_urlconf(settings.ROOT_URLCONF)
            close_old_connections()
            try:
                return chain(request)
            finally:
                close_old_connections()

        self._middleware_chain = sync_to_async(run, thread_sensitive=False, executor=self.executor)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # No ThreadSensitiveContext: it would give each request a thread of its own.
        await self.handle(scope, receive, send)


def get_http_application() -> PooledASGIHandler:
    import django

    django.setup(set_prefix=False)
    return PooledASGIHandler()
