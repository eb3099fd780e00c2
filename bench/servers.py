"""The servers under test: how each variant starts, and what its process costs.

Each server is one process pinned to core 0 (the load generator takes core 1),
with its open-file limit raised to the hard limit. CPU time comes from
``/proc/<pid>/stat`` (utime + stime of every thread of the process), memory
from ``VmRSS`` in ``/proc/<pid>/status``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-42"
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CORE = 0
LOADGEN_CORE = 1


@dataclass(frozen=True)
class Variant:
    """One row of the table: a server program and how the clients talk to it."""

    name: str
    kind: str  # dexter | uvicorn | raw | channels
    compression: bool = False
    batch: bool = False
    external: bool = False  # Dexter fed by publish() in another process, not over HTTP
    store: str = "sqlite"  # sqlite | pg (a PostgreSQL of the run's own, bench/services)
    redis: bool = False  # REDIS_URL set: the channel layer carries publications across processes
    http: bool = False  # raw fed over a bare HTTP port (raw-http), as Dexter is over its API

    @property
    def dexter(self) -> bool:
        return self.kind in ("dexter", "uvicorn")


def variants(
    servers: list[str], compression: str, batch: str, publisher: str = "http", stores: tuple[str, ...] = ()
) -> list[Variant]:
    """The rows to run: --servers picks programs; --compression, --batch, --publisher add variants.

    Compression and the process publisher are crossed with batching only on the
    plain daphne server, to keep the run short. ``stores`` (``pg``, ``pg-redis``)
    adds process-publisher rows on PostgreSQL, without and with Redis (the doorbells).
    """
    choice = {"off": [False], "on": [True], "both": [False, True]}
    comp, bat = choice[compression], choice[batch]
    ext = {"http": [False], "process": [True], "both": [False, True]}[publisher]
    out = []
    for kind in servers:
        if kind == "raw-http":
            out.append(Variant("raw-http", "raw", http=True))
            continue
        for e in ext if kind == "dexter" else [False]:
            for c in comp if kind in ("dexter", "raw") and not e else [False]:
                for b in bat if kind == "dexter" and not c else [False]:
                    name = kind + ("-ext" if e else "") + ("-deflate" if c else "") + ("-batch" if b else "")
                    out.append(Variant(name, kind, c, b, e))
    if "dexter" in servers and publisher in ("process", "both"):
        for store in stores:
            out.append(Variant(f"dexter-ext-{store}", "dexter", external=True, store="pg", redis=store == "pg-redis"))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Decided once, before the load generator pins itself to its core: server
# processes are forked from it and must not inherit that affinity.
_CAN_PIN = hasattr(os, "sched_setaffinity") and {SERVER_CORE, LOADGEN_CORE} <= os.sched_getaffinity(0)


def can_pin() -> bool:
    return _CAN_PIN


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _child_setup() -> None:
    raise_nofile()
    if can_pin():
        os.sched_setaffinity(0, {SERVER_CORE})


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of the process's main thread (the event loop) and of all its other threads,
    and the context switches of all of them."""
    out = {"loop": 0.0, "threads": 0.0, "switches": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            seconds = cpu_seconds_of(task / "stat")
            status = (task / "status").read_text()
        except OSError:  # the thread ended between the listing and the read
            continue
        out["loop" if task.name == str(pid) else "threads"] += seconds
        # Context switches, voluntary and not: threads handing the GIL to each other show here.
        out["switches"] += sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)
    return out


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- Dexter's database ------------------------------------------------------

CREATE_USERS = f"""
from django.contrib.auth.models import User
for name, staff in [("admin", True), ("alice", False), ("bob", False)]:
    User.objects.create_user(name, password={PASSWORD!r}, is_staff=staff, is_superuser=staff)
"""


def dexter_env(db: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBSOCKET_", "REALTIME_", "REDIS_URL"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "dexter.settings",
            "SECRET_KEY": "bench-only-" + "k" * 40,
            "DATABASE_URL": f"sqlite:///{db}",
            # The benchmark connects thousands of sockets from one address and
            # publishes faster than the production throttles allow.
            "WEBSOCKET_CONNECT_RATE": "10000000",
            "WEBSOCKET_MAX_CONNECTIONS": "100000",
            "REALTIME_PUBLISH_THROTTLE": "100000000/min",
            "AUTH_TOKEN_RATE_PER_ADDRESS": "100000/min",
            "JWT_ACCESS_LIFETIME": "7200",
            # Persistent database connections, as a deployment runs them: with the
            # default 0, every ORM call of a connect or a publish opens SQLite anew.
            "DATABASE_CONN_MAX_AGE": "600",
            "REALTIME_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def prepare_template(workdir: Path) -> Path:
    """A migrated SQLite file with admin, alice and bob, copied for every server run."""
    db = workdir / "template.sqlite3"
    env = dexter_env(db)
    for args in (["migrate", "--noinput", "-v0"], ["shell", "-c", CREATE_USERS]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)
    return db


# --- processes ----------------------------------------------------------------


@dataclass
class ServerProcess:
    variant: Variant
    workdir: Path
    template: Path | None
    extra_env: dict = field(default_factory=dict)
    label: str = ""  # file names of this run (default: the variant's name)
    services: object = None  # bench.services.Services, for the PostgreSQL and Redis rows
    probe: bool = False  # run Dexter under bench/probe.py (timestamps along the delivery path)
    port: int = 0
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or self.variant.name

    def command(self) -> tuple[list[str], dict]:
        py = sys.executable
        port = str(self.port)
        kind = self.variant.kind
        if kind == "raw":
            cmd = [py, "-m", "bench.ref_raw", "--port", port] + (["--compression"] if self.variant.compression else [])
            if self.variant.http:
                cmd += ["--http-port", str(self.http_port)]
            return cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}
        if kind == "channels":
            env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.ref_channels.settings", "PYTHONUNBUFFERED": "1"}
            cmd = [py, "-m", "daphne", "-b", "127.0.0.1", "-p", port, "-v", "0", "bench.ref_channels.asgi:application"]
            return cmd, env
        db = self.workdir / f"{self.name}.sqlite3"
        # A WAL left by an earlier server of the same name would be replayed
        # into the fresh copy and corrupt it ("database disk image is malformed").
        for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copy(self.template, db)
        extra = {"WEBSOCKET_COMPRESSION": "1" if self.variant.compression else "0"}
        if self.variant.store == "pg":
            extra["DATABASE_URL"] = self.services.fresh_database(self.name)
        if self.variant.redis:
            extra["REDIS_URL"] = self.services.redis_url()
        if self.probe:
            extra["PROBE_OUT"] = str(self.probe_out)
            extra["PROBE_PUBLISHER_OUT"] = str(self.publisher_probe_out)
            self.publisher_probe_out.unlink(missing_ok=True)
        env = dexter_env(db, {**extra, **self.extra_env})
        self.env = env
        if kind == "uvicorn":
            cmd = [py, "-m", "uvicorn", "dexter.asgi:application", "--interface", "asgi3"]
            cmd += ["--host", "127.0.0.1", "--port", port]
            cmd += ["--lifespan", "off", "--no-access-log", "--log-level", "warning", "--backlog", "4096"]
            cmd += ["--ws-per-message-deflate", "true" if self.variant.compression else "false"]
            return cmd, env
        launcher = ["-m", "bench.probe"] if self.probe else ["manage.py"]
        return [py, *launcher, "runrealtime", "-b", "127.0.0.1", "-p", port, "-v", "0"], env

    @property
    def probe_out(self) -> Path:
        return self.workdir / f"{self.name}.probe.json"

    @property
    def publisher_probe_out(self) -> Path:
        return self.workdir / f"{self.name}.publisher.jsonl"

    def start(self, timeout: float = 30) -> ServerProcess:
        self.port = free_port()
        self.http_port = free_port()  # the raw-http row's publish port (raw-http only)
        cmd, env = self.command()
        self.log_path = self.workdir / f"{self.name}.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_child_setup
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.variant.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.variant.name} did not start in {timeout} s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_by_thread(self) -> dict[str, float]:
        return cpu_by_thread(self.pid)

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def token(self, username: str) -> str:
        body = json.dumps({"username": username, "password": PASSWORD}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/auth/token/", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access"]
