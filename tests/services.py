"""Real Redis and PostgreSQL for the tests, started here on free loopback ports.

A pytest plugin (``pytest_plugins`` in tests/conftest.py). Each service runs once
per test session, in a temporary directory, bound to 127.0.0.1 only, and is
stopped at the end of the session. A program that is not installed skips the
tests that need it, or fails them under REQUIRE_SERVICES=1 (CI).

- ``redis_server`` / ``redis_url``: ``redis-server`` without persistence. Tests
  that stop it (``redis_control``) get it back running for the next test.
- ``postgres_server`` / ``postgres_url``: a throw-away cluster made by
  ``initdb``, trust authentication on loopback; ``postgres_url`` is an empty
  database, ``postgres_server.create_database()`` makes more. PostgreSQL
  refuses to run as root, so under root (CI containers) it runs as the
  ``postgres`` system user that the Debian package creates.

Nothing here depends on a system-wide service: the cluster and the Redis that
``apt-get install`` may auto-start listen on the default ports, ours do not.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import require_program

# How long a service may take to accept connections. initdb + start take ~2 s
# here; 30 s leaves room for a loaded two-core CI machine.
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- Redis --------------------------------------------------------------------


def _wait_until_ready(name: str, proc: subprocess.Popen, ready, log_tail, interval: float) -> None:
    """Wait until ``ready()`` is true (its errors mean "not yet"), failing fast if ``proc`` exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log_tail()}")
        try:
            if ready():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise RuntimeError(f"{name} did not start in {START_TIMEOUT} s: {log_tail()}")


class RedisServer:
    """One ``redis-server`` on a fixed loopback port, so its URL survives a restart."""

    def __init__(self, program: str, workdir: Path):
        self.program = program
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> RedisServer:
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.program,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_until_ready("redis-server", self.proc, lambda: self.command("PING") == "+PONG", self.log_tail, 0.05)
        return self

    def stop(self) -> None:
        """Stop Redis like an outage: SIGKILL, so nothing is flushed or announced."""
        _stop_process(self.proc, signal.SIGKILL)

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def command(self, *words: str) -> str:
        """Send one command in Redis's inline protocol; returns the first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall((" ".join(words) + "\r\n").encode())
            return s.recv(4096).split(b"\r\n", 1)[0].decode()

    def flush(self) -> None:
        assert self.command("FLUSHALL") == "+OK"

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(require_program("redis-server"), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def redis_control(redis_server):
    """The session's Redis, empty, for a test that may stop and restart it; running again afterwards."""
    redis_server.start()
    redis_server.flush()
    yield redis_server
    redis_server.start()


# --- PostgreSQL ---------------------------------------------------------------


def _postgres_bindir() -> str:
    """The directory of initdb and postgres: Debian keeps them off PATH, in
    /usr/lib/postgresql/<version>/bin (the newest installed wins)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3].split(".")[0])
    )
    initdb = require_program("initdb", *reversed(candidates))
    return str(Path(initdb).resolve().parent)


class PostgresServer:
    """A private PostgreSQL cluster on 127.0.0.1, trust auth, superuser ``postgres``."""

    SUPERUSER = "postgres"

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.run_as: str | None = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root. The Debian package always creates
            # the `postgres` system user; without it there is nobody to run as.
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                message = "PostgreSQL cannot run as root and there is no 'postgres' user"
                if os.environ.get("REQUIRE_SERVICES") == "1":
                    pytest.fail(message, pytrace=False)
                pytest.skip(message)
            self.run_as = "postgres"
        # Not under pytest's basetemp (mode 0700, owned by root) nor $TMPDIR, which
        # may be private too: the postgres user must be able to reach the directory.
        self.root = Path(tempfile.mkdtemp(prefix="dexter-pg-", dir="/tmp" if self.run_as else None))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        self.log_path = self.root / "postgres.log"
        if self.run_as:
            for path in (self.root, self.sockets):
                shutil.chown(path, self.run_as, self.run_as)

    def _run(self, *args: str, **kwargs) -> subprocess.Popen:
        # Popen(user=) switches user in the child itself (no su/runuser in between,
        # so our pid is the server's pid and signals reach it directly).
        drop = {"user": self.run_as, "group": self.run_as, "extra_groups": []} if self.run_as else {}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        return subprocess.Popen(list(args), cwd=self.root, env=env, **drop, **kwargs)

    def start(self) -> PostgresServer:
        initdb = self._run(
            os.path.join(self.bindir, "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # a throw-away cluster: no need to wait for the disk
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = initdb.communicate(timeout=120)
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {out.decode(errors='replace')[-2000:]}")
        with open(self.log_path, "ab") as log:
            self.proc = self._run(
                os.path.join(self.bindir, "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.sockets),
                # Test data only: durability off makes migrations several times faster.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                # Several daphne processes and publisher processes at once, each
                # with a few connections; the default of 100 is plenty but explicit.
                "-c",
                "max_connections=200",
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_until_ready("postgres", self.proc, lambda: self.execute("SELECT 1") or True, self.log_tail, 0.1)
        return self

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast shutdown": rolls back sessions, exits at once.
        _stop_process(self.proc, signal.SIGINT, timeout=20)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (a copy of ``template`` if given); returns its URL."""
        assert name.isidentifier() and (template is None or template.isidentifier())
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer(_postgres_bindir())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server) -> str:
    """An empty database ``dexter`` on the session's PostgreSQL."""
    return postgres_server.create_database("dexter")
