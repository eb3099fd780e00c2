"""The JavaScript client's tests, run by pytest so `make test` covers them.

tests/js/client.test.mjs: unit tests of WebSocketClient with a fake WebSocket
(node only); tests/js/sse.test.mjs: its SSE fallback with a fake EventSource.
tests/js/hooks.test.mjs: the React hooks against a live daphne,
with react, react-dom and jsdom from tests/js/package-lock.json (installed with
`npm ci` when tests/js/node_modules is missing). Without node (or npm) these
skip, except under REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import require_program
from tests.integration.conftest import (  # noqa: F401  (fixtures used by the live test)
    ROOT,
    server,
    server_factory,
    sqlite_env,
    template_db,
)

JS = ROOT / "tests" / "js"


def run_node(node: str, test_file: str, env: dict | None = None, timeout: float = 100) -> None:
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", f"tests/js/{test_file}"],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"node --test {test_file} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    # A run where every test skipped (e.g. SERVER_URL missing) also exits 0.
    assert "skipped 0" in result.stdout, result.stdout[-3000:]


@pytest.fixture(scope="module")
def node() -> str:
    return require_program("node")


@pytest.fixture(scope="module")
def node_modules(node) -> None:
    if (JS / "node_modules").is_dir():
        return
    npm = require_program("npm")
    subprocess.run([npm, "ci", "--prefix", str(JS), "--no-audit", "--no-fund"], cwd=ROOT, check=True, timeout=300)


def test_js_client_unit_tests_pass(node):
    run_node(node, "client.test.mjs")


def test_js_channel_presence_signal_and_position_unit_tests_pass(node):
    run_node(node, "collab.test.mjs")


def test_js_sse_fallback_unit_tests_pass(node):
    run_node(node, "sse.test.mjs")


@pytest.mark.integration
def test_js_react_hooks_work_against_a_live_server(node, node_modules, request):
    live = request.getfixturevalue("server")
    env = {"SERVER_URL": live.http, "TOKEN": live.token("alice"), "BOB_TOKEN": live.token("bob")}
    run_node(node, "hooks.test.mjs", env=env)
