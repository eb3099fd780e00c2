"""The command-line client (``python -m realtime.client``) against a real daphne process."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time

import pytest

from realtime.client import ChannelTracker, backoff_delay, close_action

from .conftest import ROOT, USER_PASSWORD

pytestmark = pytest.mark.integration

ANNOUNCE = (
    "from realtime.manager import WebSocketManager\n"
    "WebSocketManager().broadcast_sync({{'type': 'announcement', 'message': {message!r}}}, channel='global')"
)


class Cli:
    """The client as a subprocess, its stdout read line by line on a thread."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime.client", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def next(self, predicate=lambda m: True, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching line within {timeout}s; stderr: {self.stderr_so_far()}")
            try:
                message = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(message):
                return message

    def stderr_so_far(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read()

    def stop_and_read_stderr(self) -> str:
        self.stop(close=False)
        return self.proc.stderr.read()

    def stop(self, close: bool = True) -> None:
        if self.proc.stdout.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if close:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture
def cli():
    started: list[Cli] = []

    def start(*args: str) -> Cli:
        started.append(Cli(*args))
        return started[-1]

    yield start
    for c in started:
        c.stop()


def announcements(cli: Cli, count: int, timeout: float = 10.0) -> list[dict]:
    return [cli.next(lambda m: m.get("type") == "announcement", timeout) for _ in range(count)]


def ws_base(server) -> str:
    return f"ws://127.0.0.1:{server.port}"


def test_cli_signs_in_subscribes_and_prints_a_broadcast_as_json(server, cli):
    c = cli(
        "--url", ws_base(server), "--username", "alice", "--password", USER_PASSWORD,
        "--channel", "issues", "--channel", "global",
    )  # fmt: skip
    hello = c.next(lambda m: m["type"] == "connection")
    assert hello["authenticated"] is True and hello["user"]["username"] == "alice"
    subscribed = {c.next(lambda m: m["type"] == "subscribed")["channel"] for _ in range(2)}
    assert subscribed == {"issues", "global"}
    server.shell(ANNOUNCE.format(message="System maintenance"))
    [msg] = announcements(c, 1)
    assert msg["channel"] == "global" and msg["message"] == "System maintenance" and msg["seq"] >= 1


def test_cli_since_replays_stored_messages_then_exits_after_count(server, cli):
    for i in range(3):
        server.shell(ANNOUNCE.format(message=f"m{i}"))
    c = cli("--url", ws_base(server), "--channel", "global", "--since", "1", "--count", "2", "--quiet")
    assert [m["seq"] for m in announcements(c, 2)] == [2, 3]
    assert c.proc.wait(10) == 0


def test_cli_reconnects_after_restart_and_resumes_with_since(server, cli):
    token = server.token("bob")
    c = cli(
        "--url", ws_base(server), "--token", token, "--channel", "global", "--reconnect-interval", "0.2",
        # Capped at 1 s: on a loaded machine the server is down long enough
        # for the default 30 s cap's backoff to outlast the wait below.
        "--max-reconnect-delay", "1",
    )  # fmt: skip
    c.next(lambda m: m["type"] == "subscribed")
    server.shell(ANNOUNCE.format(message="before"))
    assert [m["message"] for m in announcements(c, 1)] == ["before"]
    server.stop()
    server.shell(ANNOUNCE.format(message="while down 1"))
    server.shell(ANNOUNCE.format(message="while down 2"))
    server.start()
    resumed = c.next(lambda m: m["type"] == "subscribed", timeout=20)
    assert resumed["seq"] == 3 and resumed["recovered"] is True
    server.shell(ANNOUNCE.format(message="after"))
    got = announcements(c, 3, timeout=15)
    assert [(m["seq"], m["message"]) for m in got] == [(2, "while down 1"), (3, "while down 2"), (4, "after")]
    assert c.lines.empty()


def test_cli_with_a_bad_token_and_no_password_exits_2(server, cli):
    c = cli("--url", ws_base(server), "--token", "not-a-jwt", "--channel", "global")
    assert c.proc.wait(15) == 2
    assert "4401" in c.proc.stderr.read()


# --- the client's plain core, no server -----------------------------------------


def test_close_action_follows_the_protocol_close_code_rules():
    assert {code: close_action(code) for code in (1001, 1006, 1011, 4408, 4429, 4500, 4503)} == dict.fromkeys(
        (1001, 1006, 1011, 4408, 4429, 4500, 4503), "reconnect"
    )
    assert {close_action(code) for code in (1000, 1008, 4403, 4409, 4413)} == {"stop"}
    assert close_action(4401) == "refresh_token"


def test_backoff_delay_is_jittered_exponential_and_capped():
    assert backoff_delay(1, 1.0, 30.0, lambda: 0.0) == 0.5
    assert backoff_delay(3, 1.0, 30.0, lambda: 1.0) == 4.0
    assert backoff_delay(20, 1.0, 30.0, lambda: 1.0) == 30.0
    assert backoff_delay(20, 1.0, 30.0, lambda: 0.0) == 15.0


def test_channel_tracker_drops_repeats_and_holds_messages_past_a_gap():
    t = ChannelTracker()
    t.subscribed("issues", None, 2, True)
    m = lambda seq: {"channel": "issues", "seq": seq}  # noqa: E731
    assert t.accept(m(2)) == []
    assert t.accept(m(3)) == [m(3)]
    assert t.accept(m(6)) == []
    assert t.gap("issues") == (3, 2)
    assert t.fill("issues", [m(4), m(5)]) == [m(4), m(5), m(6)]
    assert t.accept(m(9)) == [] and t.skip_gap("issues") == [m(9)]
    assert t.subscribed("issues", 9, 100, False) is True and t.last["issues"] == 100


# --- --transport sse: the same client over GET /sse/ ------------------------------


def test_cli_over_sse_replays_then_resumes_across_a_restart(server, cli):
    server.shell(ANNOUNCE.format(message="stored"))
    token = server.token("bob")
    c = cli(
        "--url", ws_base(server), "--token", token, "--transport", "sse", "--channel", "global",
        "--since", "0", "--reconnect-interval", "0.2", "--max-reconnect-delay", "1",
    )  # fmt: skip
    assert c.next(lambda m: m["type"] == "connection")["user"]["username"] == "bob"
    assert [(m["seq"], m["message"]) for m in announcements(c, 1)] == [(1, "stored")]
    server.shell(ANNOUNCE.format(message="live"))
    assert [m["message"] for m in announcements(c, 1)] == ["live"]
    server.stop()  # SIGTERM: the stream ends with event: close 4503, the client reconnects
    server.shell(ANNOUNCE.format(message="while down"))
    server.start()
    server.shell(ANNOUNCE.format(message="after"))
    got = announcements(c, 2, timeout=20)
    assert [(m["seq"], m["message"]) for m in got] == [(3, "while down"), (4, "after")]
    assert "closed with 4503" in c.stop_and_read_stderr()


def test_cli_over_sse_exits_1_on_a_forbidden_channel_and_2_on_a_bad_token(server, cli):
    c = cli("--url", ws_base(server), "--transport", "sse", "--channel", "issues")
    assert c.proc.wait(15) == 1
    assert c.next(lambda m: m["type"] == "error")["code"] == "forbidden"
    bad = cli("--url", ws_base(server), "--transport", "sse", "--token", "not-a-jwt", "--channel", "global")
    assert bad.proc.wait(15) == 2
