"""What a newcomer's `make run` does: installs only what running needs, says where it serves, and
gives a way back to the demo passwords."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import urllib.request
from importlib import metadata

import pytest
import websockets.sync.client as ws_client
from packaging.requirements import Requirement

from tests.integration.conftest import ROOT, manage

pytestmark = pytest.mark.integration


def requirement_names(path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.append(Requirement(line).name)
    return names


def closure(names) -> set[str]:
    """The installed distributions ``names`` pull in, themselves included (normalised names)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional extra's dependency that is not installed
        seen.add(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def dev_only_modules() -> list[str]:
    """Top-level modules installed only because of requirements-dev.txt (pytest, playwright, ruff, ...)."""
    run = closure(requirement_names(ROOT / "requirements.txt"))
    dev = closure(requirement_names(ROOT / "requirements-dev.txt")) - run
    assert {"pytest", "playwright"} <= dev
    modules = []
    for module, dists in metadata.packages_distributions().items():
        if all(re.sub(r"[-_.]+", "-", d).lower() in dev for d in dists) and module.isidentifier():
            modules.append(module)
    return sorted(modules)


# Put on PYTHONPATH as sitecustomize: any import of a dev-only module fails, as
# it would in a venv made from requirements.txt alone.
BLOCKER = textwrap.dedent(
    """
    import os, sys
    BLOCKED = set(os.environ["DEXTER_BLOCKED_MODULES"].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"{name} is a test-only package (requirements-dev.txt)", name=name)
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def test_make_run_installs_only_requirements_txt(tmp_path):
    venv = tmp_path / "venv"
    plan = subprocess.run(
        ["make", "-n", "run", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "-r requirements.txt" in plan
    assert "requirements-dev.txt" not in plan
    test_plan = subprocess.run(
        ["make", "-n", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "-r requirements-dev.txt" in test_plan


def test_the_run_install_set_is_enough_to_serve(sqlite_env, server_factory, tmp_path):
    blocked = dev_only_modules()
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**sqlite_env, "PYTHONPATH": str(tmp_path), "DEXTER_BLOCKED_MODULES": ",".join(blocked)}
    check = subprocess.run([sys.executable, "-c", "import pytest"], env=env, cwd=ROOT, capture_output=True, text=True)
    assert check.returncode != 0 and "test-only package" in check.stderr  # the blocker works

    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "demo_setup")
    server = server_factory(env).start()
    with urllib.request.urlopen(server.http + "/", timeout=10) as page:
        assert page.status == 200
    with urllib.request.urlopen(server.http + "/api/docs/", timeout=10) as docs:
        assert docs.status == 200
    token = server.token("admin")
    with ws_client.connect(server.ws_url("install-set", token), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connection"
        ws.send(json.dumps({"type": "subscribe", "channel": "issues"}))
        assert json.loads(ws.recv(timeout=10))["type"] == "subscribed"
    server.stop()
    log = server.log_path.read_text()
    assert "test-only package" not in log and "Traceback" not in log, log


def test_startup_line_says_where_and_what(server):
    server.stop()
    log = server.log_path.read_text()
    [line] = [line for line in log.splitlines() if "Dexter is serving on" in line]
    assert f"http://127.0.0.1:{server.port}/" in line
    assert "database: SQLite" in line and "channel layer: in-process" in line, line


def test_startup_line_never_shows_a_redis_password(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "REDIS_URL": "redis://:s3cret-pass@127.0.0.1:1/0"}).start()
    server.stop()
    [line] = [line for line in server.log_path.read_text().splitlines() if "Dexter is serving on" in line]
    assert "channel layer: Redis at 127.0.0.1:1" in line and "s3cret" not in line, line


def test_demo_setup_reset_passwords_prints_new_ones_that_work(sqlite_env, server_factory):
    manage(sqlite_env, "demo_setup")
    second = manage(sqlite_env, "demo_setup").stdout
    assert "--reset-passwords" in second  # the hint, since the passwords were printed at first run
    reset = manage(sqlite_env, "demo_setup", "--reset-passwords").stdout
    passwords = dict(re.findall(r"^\s+(admin|alice|bob)\s+(\S+)$", reset, re.M))
    assert set(passwords) == {"admin", "alice", "bob"}
    server = server_factory(sqlite_env).start()
    for name, password in passwords.items():
        assert server.token(name, password)
