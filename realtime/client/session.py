"""One run of the client: sign in, open a session, and reconnect with backoff until told to stop.

``Session`` holds what outlives a connection (the token, each channel's position,
what was printed); a subclass opens one connection of its transport
(``WebSocketSession``, ``SSESession``) and returns how it closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
from typing import TextIO

from .endpoints import SIGN_IN_ERRORS, fetch_token, redact
from .ordering import ChannelTracker
from .reconnect import REFRESH_TOKEN, STOP, backoff_delay, close_action


class Fatal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Session:
    """Connect, subscribe, print; reconnect and resume until told to stop."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.args = args
        self.out = out
        self.err = err
        self.token: str | None = args.token
        self.tracker = ChannelTracker()
        self.since: dict[str, int] = {c: args.since for c in args.channel} if args.since is not None else {}
        self.printed = 0

    def log(self, message: str) -> None:
        if not self.args.quiet:
            print(f"dexter-realtime: {redact(message, self.token)}", file=self.err, flush=True)

    def emit(self, message: dict, publication: bool = False) -> None:
        print(json.dumps(message, separators=(",", ":"), ensure_ascii=False), file=self.out, flush=True)
        if publication:
            self.printed += 1

    @property
    def done(self) -> bool:
        return self.args.count is not None and self.printed >= self.args.count

    def login(self) -> None:
        if self.args.username is None:
            return
        try:
            self.token = fetch_token(
                self.args.url, self.args.username, self.args.password or "", token_url=self.args.token_url
            )
        except urllib.error.HTTPError as exc:
            raise Fatal(
                2, f"sign-in failed: {SIGN_IN_ERRORS.get(exc.code, 'the server said no')} (HTTP {exc.code})"
            ) from exc
        except (OSError, ValueError, KeyError) as exc:
            raise Fatal(2, f"sign-in failed: {exc}") from exc

    async def run(self) -> int:
        try:
            if self.token is None:
                self.login()
            return await self._loop()
        except Fatal as exc:
            self.log(str(exc))
            return exc.status

    async def _loop(self) -> int:
        attempts = 0
        while True:
            code, opened = await self._session()
            if self.done:
                return 0
            if opened:
                attempts = 0
            action = close_action(code)
            if action == STOP:
                self.log(f"closed with {code}: staying closed")
                return 0 if code == 1000 else 1
            if action == REFRESH_TOKEN:
                if self.args.username is None:
                    raise Fatal(2, "token rejected (4401) and no --username to sign in again")
                self.login()
            max_attempts = self.args.max_reconnect_attempts
            if max_attempts and attempts >= max_attempts:
                self.log(f"closed with {code}: gave up after {attempts} reconnect attempts")
                return 1
            attempts += 1
            delay = 0.0 if action == REFRESH_TOKEN and attempts == 1 else self._delay(attempts)
            self.log(f"closed with {code}: reconnect attempt {attempts} in {delay:.1f}s")
            await asyncio.sleep(delay)

    def _delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self.args.reconnect_interval, self.args.max_reconnect_delay)

    async def _session(self) -> tuple[int, bool]:
        """One connection; returns (close code, whether it got as far as `connection`)."""
        raise NotImplementedError
