"""realtime/server.py's per-socket queue and realtime/routing.py's plain-function router."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator

from realtime.routing import protocol_router
from realtime.server import InputQueue

pytestmark = pytest.mark.asyncio


async def test_messages_come_out_in_the_order_they_went_in():
    q = InputQueue()
    q.put_nowait({"n": 1})
    q.put_nowait({"n": 2})
    assert await q.get() == {"n": 1}
    assert await q.get() == {"n": 2}
    reader = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait({"n": 3})
    q.put_nowait({"n": 4})
    assert await reader == {"n": 3}
    assert await q.get() == {"n": 4}


async def test_a_message_handed_to_a_cancelled_reader_is_kept():
    q = InputQueue()
    reader = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    q.put_nowait({"type": "websocket.disconnect"})
    reader.cancel()  # cancelled after the hand-over, before it ran
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await asyncio.wait_for(q.get(), 1) == {"type": "websocket.disconnect"}


async def test_one_reader_at_a_time():
    q = InputQueue()
    first = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one reader"):
        await q.get()
    q.put_nowait("x")
    assert await first == "x"


async def test_router_refuses_scope_types_it_does_not_serve():
    async def http(scope, receive, send):
        return "http"

    app = protocol_router(http)
    assert await app({"type": "http"}, None, None) == "http"
    with pytest.raises(ValueError, match="lifespan"):
        app({"type": "lifespan"}, None, None)


class Echo(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=f"echo {text_data}")


@pytest.mark.django_db(transaction=True)
async def test_projects_add_their_own_websocket_routes(monkeypatch):
    from django.urls import re_path

    from dexter.asgi import application
    from realtime import routing

    monkeypatch.setattr(routing, "websocket_urlpatterns", [re_path(r"^chat/$", Echo.as_asgi())])
    comm = WebsocketCommunicator(application, "/chat/")
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data="hi")
    assert await comm.receive_from() == "echo hi"
    await comm.disconnect()
    # The real-time endpoint is still served first.
    comm = WebsocketCommunicator(application, "/ws/tab-1/")
    connected, _ = await comm.connect()
    assert connected and json.loads(await comm.receive_from())["type"] == "connection"
    await comm.disconnect()
