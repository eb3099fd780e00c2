"""A session over server-sent events (docs/protocol.md section 13): ``GET /sse/`` with the
channels and their positions, for networks that break WebSockets (needs ``httpx``, ``httpx-sse``).
"""

from __future__ import annotations

import json

from .endpoints import http_base
from .reconnect import CLOSE_TOKEN_INVALID
from .session import Fatal, Session


class SSESession(Session):
    """The client over ``GET /sse/``."""

    async def _session(self) -> tuple[int, bool]:
        """One ``GET /sse/`` stream: the channels at once, resumed from their positions.

        A stream has no close frame: the server's ``event: close`` carries the
        code a socket would have been closed with, and a stream that just ends
        reads as 1006.
        """
        import httpx
        from httpx_sse import SSEError, aconnect_sse

        self.tracker.forget_held()
        params = {"channels": ",".join(self.args.channel), "client_id": self.args.client_id}
        position = self._position()
        if position:
            params["since"] = position
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        # The server pings every 15 s by default: a read silent for 45 s is a dead stream.
        timeout = httpx.Timeout(10, read=45)
        opened = False
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                async with aconnect_sse(
                    http, "GET", http_base(self.args.url) + "/sse/", params=params, headers=headers
                ) as source:
                    response = source.response
                    if response.status_code != 200:
                        return await self._sse_refused(response), False
                    async for event in source.aiter_sse():
                        try:
                            message = json.loads(event.data)
                        except ValueError:
                            continue
                        if event.event == "close":
                            return int(message.get("code") or 1006), opened
                        if event.event == "connection":
                            opened = True
                            self._resume_from(event.id)
                        elif event.event == "recovery":
                            channel = message.get("channel")
                            self.log(f"reset: messages on {channel} after {self.since.get(channel)} are gone")
                            message = {"type": "recovery", **message}
                        elif isinstance(message.get("channel"), str) and isinstance(message.get("seq"), int):
                            for out in [*self.tracker.accept(message), *self.tracker.skip_gap(message["channel"])]:
                                self.emit(out, publication=True)
                            if self.done:
                                return 1000, opened
                            continue
                        self.emit(message)
            return 1006, opened
        except httpx.InvalidURL as exc:
            raise Fatal(1, f"bad --url: {exc}") from exc
        except (httpx.HTTPError, SSEError, OSError) as exc:
            self.log(f"stream failed: {type(exc).__name__} {exc}")
            return 1006, opened

    async def _sse_refused(self, response) -> int:
        """A refused stream: 401 is a token to refresh, 503 a retry, anything else final."""
        try:
            body = json.loads(await response.aread())
        except ValueError:
            body = {"type": "error", "code": f"http_{response.status_code}"}
        if response.status_code == 401:
            self.log(f"stream refused: {body.get('code')}")
            return CLOSE_TOKEN_INVALID
        if response.status_code in (429, 502, 503, 504):
            return 4503
        self.emit(body)
        raise Fatal(
            1, f"cannot open the stream: HTTP {response.status_code} {body.get('code')} {body.get('channel') or ''}"
        )

    def _position(self) -> str:
        parts = []
        for channel in self.args.channel:
            since = self.tracker.last.get(channel, self.since.get(channel))
            if since is not None:
                parts.append(f"{channel}={since}")
        return ",".join(parts)

    def _resume_from(self, position: str | None) -> None:
        """The stream's position at its start: publications at or below it were printed already (or are gone)."""
        for part in (position or "").split(","):
            channel, _, seq = part.rpartition("=")
            if channel and seq.isdigit():
                self.tracker.last[channel] = int(seq)
