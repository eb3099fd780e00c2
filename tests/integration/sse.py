"""A plain-HTTP SSE reader for the end-to-end tests: httpx streaming, the wire parsed by hand.

It keeps every field the server sends (``retry:``, ``: ping`` comments, ``id:``)
so the tests assert the wire format itself, not a library's reading of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Event:
    event: str
    data: object
    id: str | None  # this event's own id: field, None when it had none


@dataclass
class Stream:
    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    last_id: str = ""  # as a browser keeps it: the last id: seen

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> Event:
        """The next event; raises EOFError when the server ends the stream, TimeoutError past ``timeout``."""
        deadline = time.monotonic() + timeout
        kind, data, event_id = "message", [], None
        while True:
            try:
                line = await asyncio.wait_for(self._lines.__anext__(), max(0.01, deadline - time.monotonic()))
            except StopAsyncIteration:
                raise EOFError("stream ended") from None
            if line == "":
                if data:
                    return Event(kind, json.loads("\n".join(data)), event_id)
                kind, data, event_id = "message", [], None
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = self.last_id = value
            elif name == "retry":
                self.retry = int(value)

    async def next_of(self, kind: str, timeout: float = 5.0) -> Event:
        deadline = time.monotonic() + timeout
        while True:
            ev = await self.next(max(0.01, deadline - time.monotonic()))
            if ev.event == kind:
                return ev

    async def until_closed(self, timeout: float = 10.0) -> list[Event]:
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                out.append(await self.next(max(0.01, deadline - time.monotonic())))
        except EOFError:
            return out


def url(server, channels: str, token: str | None = None, **params) -> str:
    query = {"channels": channels, **params}
    if token:
        query["token"] = token
    return str(httpx.URL(server.http + "/sse/", params=query))


@contextlib.asynccontextmanager
async def open_stream(server, channels: str, token: str | None = None, headers: dict | None = None, **params):
    """An open ``GET /sse/`` whose status is 200; ``Stream`` reads its events."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        async with client.stream("GET", url(server, channels, token, **params), headers=headers or {}) as resp:
            assert resp.status_code == 200, (resp.status_code, (await resp.aread())[:500])
            assert resp.headers["content-type"].startswith("text/event-stream")
            yield Stream(resp)


async def refused(server, channels: str, token: str | None = None, headers: dict | None = None, **params):
    """A ``GET /sse/`` that is answered at once: (status, JSON body)."""
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(url(server, channels, token, **params), headers=headers or {})
        return resp.status_code, resp.json()
