"""schemathesis against /api/schema/ of a real server: anonymous, as a user and as staff.

Every operation of the OpenAPI schema gets generated requests (valid and
invalid); the run fails on a 5xx, a status the schema does not document, a
content type or a body that does not match the schema. Bounded so that the
three runs take about two to three minutes on two shared cores: the staff run
is schemathesis's coverage phase (boundary values of every parameter and
field: huge numbers, empty and long strings, wrong types), the two others fuzz
with random data.
The command is in the README ("Reliability").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# role -> (username or None, phases, examples per operation)
ROLES = {
    "anonymous": (None, "fuzzing", 5),
    "user": ("alice", "fuzzing", 10),
    "staff": ("admin", "coverage", 5),
}


def schemathesis(server, token: str | None, phases: str, examples: int, seed: int) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        server.http + "/api/schema/",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "10",
    ]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=server.log_path.parent)


@pytest.mark.timeout(420)
def test_no_endpoint_answers_5xx_or_outside_its_schema(sqlite_env, server_factory):
    env = {
        **sqlite_env,
        # The runs send thousands of requests from one address; the throttles have their own tests.
        "REALTIME_PUBLISH_THROTTLE": "1000000/min",
        "EVENTS_THROTTLE": "1000000/min",
    }
    server = server_factory(env).start()
    failures = []
    for seed, (role, (username, phases, examples)) in enumerate(ROLES.items(), start=1):
        token = server.token(username) if username else None
        result = schemathesis(server, token, phases, examples, seed)
        # The summary lines ("N generated, N passed") for `pytest -s` and the README.
        summary = [line.strip() for line in result.stdout.splitlines() if " generated," in line]
        print(f"schemathesis {role}: {' '.join(summary)}")
        if result.returncode != 0:
            failures.append(f"--- {role} (exit {result.returncode})\n{result.stdout[-6000:]}{result.stderr[-2000:]}")
    assert not failures, "\n".join(failures)
