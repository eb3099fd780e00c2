"""Real server processes for end-to-end tests: daphne on loopback with its own database.

``server`` starts one daphne process on a copy of a migrated SQLite file
that already holds the users admin, alice and bob (password: USER_PASSWORD).
``LiveServer`` can also be built by hand for several processes on one database,
for PostgreSQL and Redis (``env=``), and stopped with SIGTERM or SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_PASSWORD = "correct-horse-42"
BASE_ENV = {
    "SECRET_KEY": "integration-tests-only-" + "k" * 30,
    "WEBSOCKET_CONNECT_RATE": "100000",
    "WEBSOCKET_MESSAGE_RATE": "1000",
    "REALTIME_LOG_LEVEL": "INFO",
    # Tests fetch many tokens from one address; the throttle's own test sets its rates.
    "AUTH_TOKEN_RATE_PER_USERNAME": "100000/min",
    "AUTH_TOKEN_RATE_PER_ADDRESS": "100000/min",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBSOCKET_", "REALTIME_", "REDIS_URL"))}
    env.update(BASE_ENV)
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def manage(env: dict, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


CREATE_USERS = f"""
from django.contrib.auth.models import User
for name, staff in [("admin", True), ("alice", False), ("bob", False)]:
    User.objects.create_user(name, password={USER_PASSWORD!r}, is_staff=staff, is_superuser=staff)
"""


def prepare_database(env: dict) -> None:
    """Migrate and create the three users in the database ``env`` points at."""
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "shell", "-c", CREATE_USERS)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "db.sqlite3"
    prepare_database(server_env({"DATABASE_URL": f"sqlite:///{path}"}))
    return path


class LiveServer:
    def __init__(self, env: dict, log_path: Path, port: int | None = None, args: tuple[str, ...] = ()):
        self.env = env
        self.args = tuple(args)  # more options for runrealtime (daphne's)
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, client_id: str = "tab-1", token: str | None = None, query: str = "") -> str:
        params = [p for p in (f"token={token}" if token else "", query) if p]
        return f"ws://127.0.0.1:{self.port}/ws/{client_id}/" + ("?" + "&".join(params) if params else "")

    def start(self, timeout: float = 20) -> LiveServer:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runrealtime", "-b", "127.0.0.1", "-p", str(self.port), *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            self.log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return manage(self.env, *args)

    def shell(self, code: str) -> str:
        return manage(self.env, "shell", "-c", code).stdout

    def request(self, method: str, path: str, body=None, token: str | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.http + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def token(self, username: str, password: str = USER_PASSWORD) -> str:
        status, body = self.request("POST", "/api/auth/token/", {"username": username, "password": password})
        assert status == 200, body
        return body["access"]


@pytest.fixture
def sqlite_env(template_db, tmp_path):
    """Server environment on a private copy of the migrated template database."""
    db = tmp_path / "db.sqlite3"
    shutil.copy(template_db, db)
    return server_env({"DATABASE_URL": f"sqlite:///{db}"})


@pytest.fixture
def server_factory(tmp_path):
    servers: list[LiveServer] = []

    def make(env: dict, port: int | None = None) -> LiveServer:
        server = LiveServer(env, tmp_path / f"server-{len(servers)}.log", port)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(signal.SIGKILL)


@pytest.fixture
def server(sqlite_env, server_factory):
    return server_factory(sqlite_env).start()
