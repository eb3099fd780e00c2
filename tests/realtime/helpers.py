"""Drive the consumer through Channels' WebsocketCommunicator, as a client would."""

from __future__ import annotations

import json

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dexter.asgi import application


class Client:
    """A WebsocketCommunicator that speaks JSON frames of the protocol."""

    def __init__(self, path: str = "/ws/tab-1/", *, token: str | None = None, headers=None, client=("127.0.0.1", 5000)):
        if token is not None:
            path += ("&" if "?" in path else "?") + f"token={token}"
        self.comm = WebsocketCommunicator(application, path, headers=headers or [])
        self.comm.scope["client"] = client
        self.hello: dict | None = None

    async def connect(self, timeout: float = 5):
        connected, code = await self.comm.connect(timeout=timeout)
        if connected:
            self.hello = await self.recv()
        return connected, code

    async def send(self, message: dict) -> None:
        await self.comm.send_to(text_data=json.dumps(message))

    async def send_raw(self, text=None, bytes_data=None) -> None:
        """Any frame, the empty one included (send_to refuses those)."""
        await self.comm.send_input({"type": "websocket.receive", "text": text, "bytes": bytes_data})

    async def recv(self, timeout: float = 3) -> dict:
        out = await self.comm.receive_output(timeout)
        if out["type"] == "websocket.close":
            return {"type": "__closed__", "code": out.get("code")}
        return json.loads(out["text"])

    async def request(self, message: dict, timeout: float = 3) -> dict:
        await self.send(message)
        return await self.recv(timeout)

    async def closed_with(self, timeout: float = 3) -> int:
        """Read until the server closes; returns the close code."""
        while True:
            out = await self.comm.receive_output(timeout)
            if out["type"] == "websocket.close":
                return out.get("code")

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.comm.receive_nothing(timeout)

    async def close(self) -> None:
        await self.comm.disconnect()


class DatabaseThreadQueries:
    """Queries of the consumers' database thread (where database_sync_to_async runs them)."""

    async def __aenter__(self):
        self.ctx = CaptureQueriesContext(connection)
        await database_sync_to_async(self.ctx.__enter__)()
        return self

    async def __aexit__(self, *exc):
        def leave():
            self.ctx.__exit__(None, None, None)
            return [q["sql"] for q in self.ctx.captured_queries]  # read on that thread: its connection

        self.sql = await database_sync_to_async(leave)()

    def on(self, table: str) -> list[str]:
        return [sql for sql in self.sql if f'"{table}"' in sql]
