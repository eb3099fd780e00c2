"""What a server says in its log, and what a client is told when it is closed: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

from tests.integration.conftest import ROOT, USER_PASSWORD, free_port

pytestmark = pytest.mark.integration


def wait_for_log(server, predicate, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        log = server.log_path.read_text()
        if predicate(log):
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"log condition not met within {timeout}s:\n{log[-4000:]}")
        time.sleep(0.1)


def layer_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "channel layer" in line and "Dexter is serving" not in line]


def test_unreachable_channel_layer_logs_one_warning_then_one_line_when_back(sqlite_env, server_factory, redis_control):
    redis_control.stop()
    env = {**sqlite_env, "REDIS_URL": redis_control.url, "REALTIME_LAYER_RETRY_MAX": "2"}
    server = server_factory(env).start()
    # Minted here, not signed in over HTTP: the token endpoint's throttle keeps its
    # counters in Redis (the HTTP side's concern); this test is about the socket side.
    token = (
        server.shell(
            "from django.contrib.auth.models import User\n"
            "from rest_framework_simplejwt.tokens import AccessToken\n"
            "print(AccessToken.for_user(User.objects.get(username='alice')))\n"
        )
        .strip()
        .splitlines()[-1]
    )
    # The hub starts with the first connection; the poller delivers meanwhile.
    with ws_client.connect(server.ws_url("layer-down", token), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connection"
        log = wait_for_log(server, lambda text: "channel layer unreachable" in text)
        # Several retries later (every 2 s at most here), still one line, and no traceback.
        started = time.monotonic()
        while time.monotonic() - started < 6:
            ws.send(json.dumps({"type": "ping", "timestamp": "x"}))
            assert json.loads(ws.recv(timeout=5))["type"] == "pong"
            time.sleep(0.5)
        log = server.log_path.read_text()
        assert len(layer_lines(log)) == 1, log
        assert "Traceback" not in log, log
        assert len(log.splitlines()) < 10, log

        redis_control.start()
        log = wait_for_log(server, lambda text: "channel layer is back" in text, timeout=20)
        lines = layer_lines(log)
        assert len(lines) == 2 and "WARNING" in lines[0] and "INFO" in lines[1], lines
        assert "Traceback" not in log


def test_debug_log_tells_the_story_of_a_connection_and_never_a_token(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "REALTIME_LOG_LEVEL": "DEBUG"}).start()
    token = server.token("alice")
    admin = server.token("admin")
    with ws_client.connect(server.ws_url("storyteller", token), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connection"
        ws.send(json.dumps({"type": "subscribe", "channel": "global", "ref": "a"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
        ws.send(json.dumps({"type": "subscribe", "channel": "nosuchkind"}))
        assert json.loads(ws.recv(timeout=10))["code"] == "unknown_channel"
        status, _ = server.request(
            "POST",
            "/api/realtime/broadcast/",
            {"channel": "global", "message": {"type": "announcement", "message": "hi"}},
            admin,
        )
        assert status in (200, 201, 202)
        assert json.loads(ws.recv(timeout=10))["type"] == "announcement"
        ws.send(json.dumps({"type": "unsubscribe", "channel": "global"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "unsubscribed"
        ws.close(1000, "done here")
    log = wait_for_log(server, lambda text: "closed" in text and "code=1000" in text)
    lines = [line for line in log.splitlines() if " DEBUG " in line]
    story = "\n".join(lines)
    assert "subscribed global" in story, story
    assert "error unknown_channel" in story and "nosuchkind" in story, story
    assert "publication global#1" in story, story
    assert "unsubscribed global" in story, story
    assert "code=1000" in story, story
    assert token not in log and admin not in log and "eyJ" not in log


@pytest.mark.parametrize(
    ("env", "code", "reason"),
    [({"WEBSOCKET_MAX_CONNECTIONS": "1"}, 4503, "server at capacity"), ({}, 4413, "message too large")],
)
def test_policy_closes_carry_a_reason(sqlite_env, server_factory, env, code, reason):
    server = server_factory({**sqlite_env, **env, "WEBSOCKET_MAX_MESSAGE_SIZE": "1000"}).start()
    token = server.token("alice")
    with ws_client.connect(server.ws_url("first", token), open_timeout=10) as first:
        assert json.loads(first.recv(timeout=10))["type"] == "connection"
        if code == 4413:
            first.send("x" * 2000)
            victim = first
        else:
            victim = ws_client.connect(server.ws_url("second", token), open_timeout=10)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                victim.recv(timeout=10)
        assert closed.value.rcvd.code == code
        assert closed.value.rcvd.reason == reason
    assert token not in server.log_path.read_text()


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "realtime.client", "--max-reconnect-attempts", "1", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_never_prints_a_token_given_an_http_url(server):
    token = server.token("alice")
    result = run_cli("--url", server.http, "--token", token)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert token not in output and "eyJ" not in output, output
    assert "ws://" in output  # says what to use instead


def test_cli_says_why_sign_in_failed(server):
    result = run_cli("--url", f"ws://127.0.0.1:{server.port}", "--username", "alice", "--password", "wrong")
    assert result.returncode == 2
    assert "wrong username or password" in result.stderr, result.stderr
    assert USER_PASSWORD not in result.stderr
    unreachable = run_cli("--url", f"ws://127.0.0.1:{free_port()}", "--username", "alice", "--password", "x")
    assert unreachable.returncode == 2 and "sign-in failed" in unreachable.stderr
