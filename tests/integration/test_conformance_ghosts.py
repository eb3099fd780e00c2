"""The Autobahn fuzzing client against ``/ws/<client_id>/`` leaves no ghost connections.

392 connections (196 cases x 2), anonymous and signed in, each fed one of the suite's
frame sequences (fragmented, interleaved control frames, invalid UTF-8, bad
opcodes, closes with every code) and often closed or dropped by the fuzzer
before our reply is written. Afterwards the server must hold nothing for any
of them: no ``Connection`` row, no hub entry or channel, nobody "online".
The outcomes per case are not checked here (the endpoint speaks Dexter's
protocol, not echo); ``make conformance`` records them against an echo route.

Needs the Autobahn testsuite (``make autobahn``: Python 2.7 and
``pip install --target .autobahn/lib``); skipped without it, failed under
REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os

import pytest

from tests.conformance import autobahn
from tests.conformance.run import fuzz_endpoint, parse_groups

pytestmark = pytest.mark.integration

# 1.1 and 1.2 wait 4 s each for an echo the endpoint never sends, and 6.22's
# 34 code points take the path of the rest of 6.x: ~45 s instead of ~130 s.
EXCLUDE = ["1.1.*", "1.2.*", "6.22.*"]


@pytest.fixture
def wstest():
    if not autobahn.installed():
        message = "the Autobahn testsuite is not installed (make autobahn)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message + " and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)


@pytest.mark.timeout(300)
def test_fuzzing_the_endpoint_leaves_no_ghost_connections(wstest, sqlite_env, server_factory, tmp_path):
    env = {**sqlite_env, "JWT_ACCESS_LIFETIME": "3600"}
    server = server_factory(env).start()
    summary, left = fuzz_endpoint(server, parse_groups("1-7"), EXCLUDE, tmp_path / "autobahn", timeout=240)
    cases = sum(sum(g["counts"].values()) for groups in summary.values() for g in groups.values())
    assert cases == 2 * 196, summary  # both agents ran every case
    assert left == {
        "connection_rows": 0,
        "hub_connections": 0,
        "hub_channels": [],
        "hub_tasks": left["hub_tasks"],
        "online": [],
    }
