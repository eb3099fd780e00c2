"""dexter/http.py: Django's HTTP side on long-lived threads that keep their database connection."""

from __future__ import annotations

import json

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db.backends.signals import connection_created

from dexter.http import PooledASGIHandler
from tests.conftest import access_token


async def request(app, path: str, *, method: str = "GET", body: bytes = b"", headers=()) -> tuple[int, dict, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    comm = ApplicationCommunicator(app, scope)
    await comm.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await comm.receive_output(10)
    chunks = []
    while True:
        message = await comm.receive_output(10)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    await comm.wait(5)
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, b"".join(chunks)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_requests_reuse_the_threads_database_connection(settings, staff):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 60
    opened = []

    def count(sender, connection, **kwargs):
        opened.append(connection.alias)

    connection_created.connect(count)
    try:
        app = PooledASGIHandler(threads=1)
        token = access_token(staff)
        auth = (b"authorization", f"Bearer {token}".encode())
        for _ in range(5):
            status, headers, body = await request(app, "/api/realtime/stats/", headers=[auth])
            assert status == 200, body
            assert "connections" in json.loads(body)
        # Middleware still runs, synchronously, around the view.
        assert headers["x-frame-options"] == "DENY"
    finally:
        connection_created.disconnect(count)
    # Stock ASGIHandler opens one per request (a new thread each time): 5 here.
    assert opened == ["default"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_errors_and_static_files_go_through_the_same_chain():
    app = PooledASGIHandler(threads=2)
    status, _, body = await request(app, "/api/realtime/stats/")
    assert status == 401
    status, headers, body = await request(app, "/static/realtime/dexter-realtime.js")
    assert status == 200 and b"export default WebSocketClient" in body
    status, _, _ = await request(app, "/no/such/page/")
    assert status == 404


def test_thread_count_must_be_positive():
    with pytest.raises(ValueError, match="DEXTER_HTTP_THREADS"):
        PooledASGIHandler(threads=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_request_is_served_start_to_finish_on_one_worker_thread(staff):
    """request_started, the view and request_finished on the same long-lived thread:
    the signals' close_old_connections then acts on the connection the view used."""
    import threading

    from django.core.signals import request_finished, request_started
    from django.db.backends.signals import connection_created

    seen: dict[str, list[str]] = {"started": [], "connected": [], "finished": []}

    def on(name):
        def receiver(**kwargs):
            seen[name].append(threading.current_thread().name)

        return receiver

    receivers = {"started": on("started"), "connected": on("connected"), "finished": on("finished")}
    request_started.connect(receivers["started"])
    connection_created.connect(receivers["connected"])
    request_finished.connect(receivers["finished"])
    try:
        app = PooledASGIHandler(threads=1)
        auth = (b"authorization", f"Bearer {access_token(staff)}".encode())
        body = json.dumps({"channel": "global", "message": {"type": "announcement", "message": "x"}}).encode()
        for _ in range(3):
            status, headers, answer = await request(
                app,
                "/api/realtime/broadcast/",
                method="POST",
                body=body,
                headers=[auth, (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            )
            assert status == 202, answer
            assert json.loads(answer)["channel"] == "global"
    finally:
        request_started.disconnect(receivers["started"])
        connection_created.disconnect(receivers["connected"])
        request_finished.disconnect(receivers["finished"])
    assert seen["started"] == seen["finished"] == ["dexter-http-0"] * 3
    assert seen["connected"] == ["dexter-http-0"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_view_that_raises_is_a_500_and_the_worker_lives_on(settings):
    from django.urls import path

    def broken(request):
        raise RuntimeError("boom")

    from django.http import HttpResponse

    urls = type("urls", (), {"urlpatterns": [path("broken/", broken), path("ok/", lambda r: HttpResponse("ok"))]})
    settings.ROOT_URLCONF = urls
    app = PooledASGIHandler(threads=1)
    status, _, _ = await request(app, "/broken/")
    assert status == 500
    status, _, body = await request(app, "/ok/")
    assert (status, body) == (200, b"ok")


def _cache_urls(seen: list):
    from django.core.cache import caches
    from django.http import HttpResponse
    from django.urls import path

    def touch(request):
        backend = caches["default"]
        backend.set("touched", len(seen))
        seen.append(backend)  # kept alive, so a new backend cannot reuse an old one's id
        return HttpResponse("ok")

    return type("urls", (), {"urlpatterns": [path("touch/", touch)]})


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_worker_thread_keeps_its_cache_backend_between_requests(settings):
    """As a WSGI thread does: a job runs in the thread's own context, where Django's
    ``caches`` (an asgiref Local, a context variable) keeps what it built."""
    seen: list = []
    settings.ROOT_URLCONF = _cache_urls(seen)
    app = PooledASGIHandler(threads=1)
    for _ in range(3):
        status, _, body = await request(app, "/touch/")
        assert (status, body) == (200, b"ok")
    assert seen[0] is seen[1] is seen[2]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_requests_share_one_redis_connection(settings, redis_url):
    """With a fresh context per request, each request built a Redis client and its
    pool again: a new Redis connection per request."""
    import redis

    settings.CACHES = {"default": {"BACKEND": "dexter.cache.RedisCacheWithLocalFallback", "LOCATION": redis_url}}
    settings.ROOT_URLCONF = _cache_urls([])
    counter = redis.Redis.from_url(redis_url)
    before = counter.info("stats")["total_connections_received"]
    app = PooledASGIHandler(threads=1)
    for _ in range(10):
        status, _, body = await request(app, "/touch/")
        assert (status, body) == (200, b"ok")
    assert counter.info("stats")["total_connections_received"] - before == 1
    counter.close()
