"""``make conformance``: the Autobahn fuzzing client against ``manage.py runrealtime``.

Two passes, each on a fresh server process and SQLite file:

1. ``/echo/`` (tests/conformance/settings.py), cases 1-7 and 9: how the
   WebSocket layer under the application (daphne, autobahn, Twisted,
   realtime/server.py) holds up against the suite. The outcome per case group
   is printed and written to test-artifacts/autobahn/summary.json.
2. ``/ws/<client_id>/`` itself, anonymous and signed in, cases 1-7: not for
   their outcomes (the endpoint speaks Dexter's JSON protocol, not echo) but
   for what the run leaves behind. Afterwards there must be no ``Connection``
   row, no hub entry and nobody "online" (exit status 1 otherwise).

    python -m tests.conformance.run [--cases 1-7,9] [--ghost-cases 1-7] [--skip-echo]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.conformance import autobahn
from tests.integration.conftest import LiveServer, prepare_database, server_env
from tests.integration.leftovers import wait_until_clean

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "autobahn"
SETTINGS = "tests.conformance.settings"
# Longer than the run, so that no socket of the signed-in agent meets an expired token.
TOKEN_LIFETIME = "7200"
# Under the heartbeat interval (30 s): what is gone by then was released by the
# connection's own end, not swept by the hub's maintenance.
RELEASE_TIMEOUT = 10.0
# Cases 9.1-9.4 send messages of up to 16 MiB; daphne's default cap of 1 MiB
# would answer them with 1009 by design (the endpoint's own limit is 64 KiB).
# The echo pass raises the cap so that those cases test the framing, not the cap.
ECHO_ARGS = ("--websocket-max-message-size", str(16 * 2**20), "--websocket-max-frame-size", str(16 * 2**20))


def parse_groups(text: str) -> list[str]:
    """``"1-7,9"`` -> ``["1.*", ..., "7.*", "9.*"]`` (wstest's case patterns)."""
    groups: list[str] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        groups += [f"{n}.*" for n in range(int(low), int(high or low) + 1)]
    return groups


def start_server(workdir: Path, name: str, args: tuple[str, ...] = ()) -> LiveServer:
    db = workdir / f"{name}.sqlite3"
    env = server_env(
        {
            "DATABASE_URL": f"sqlite:///{db}",
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "JWT_ACCESS_LIFETIME": TOKEN_LIFETIME,
        }
    )
    prepare_database(env)
    return LiveServer(env, ARTIFACTS / f"{name}-server.log", args=args).start()


def echo_pass(workdir: Path, cases: list[str], timeout: float) -> dict:
    server = start_server(workdir, "echo", ECHO_ARGS)
    try:
        index = autobahn.run_fuzzingclient(
            {"dexter-echo": f"ws://127.0.0.1:{server.port}/echo/"},
            cases,
            ARTIFACTS / "echo",
            ARTIFACTS / "wstest.log",
            timeout,
        )
    finally:
        server.stop()
    return autobahn.summarize(index)


def ghost_pass(workdir: Path, cases: list[str], timeout: float) -> tuple[dict, dict]:
    server = start_server(workdir, "ghosts")
    try:
        return fuzz_endpoint(server, cases, [], ARTIFACTS / "ghosts", timeout)
    finally:
        server.stop()


def fuzz_endpoint(server: LiveServer, cases: list[str], exclude: list[str], outdir: Path, timeout: float):
    """Fuzz /ws/<client_id>/ anonymously and as alice at once; returns (summary, what is left after)."""
    staff = server.token("admin")
    alice = server.token("alice")
    index = autobahn.run_fuzzingclient(
        {
            "dexter-ws-anonymous": server.ws_url("fuzz"),
            "dexter-ws-alice": server.ws_url("fuzz", token=alice),
        },
        cases,
        outdir,
        outdir / "wstest.log",
        timeout,
        exclude,
    )
    (left,) = wait_until_clean([server], staff, RELEASE_TIMEOUT)
    return autobahn.summarize(index), left


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="1-7,9", help="case groups against /echo/ (default 1-7,9)")
    parser.add_argument("--ghost-cases", default="1-7", help="case groups against /ws/<client_id>/ (default 1-7)")
    parser.add_argument("--skip-echo", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds for one wstest run")
    args = parser.parse_args(argv)
    if not autobahn.installed():
        print("the Autobahn testsuite is not installed: run `make autobahn` (needs Python 2.7)", file=sys.stderr)
        return 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="dexter-conformance-"))
    try:
        if not args.skip_echo:
            started = time.monotonic()
            result["echo"] = echo_pass(workdir, parse_groups(args.cases), args.timeout)
            print(autobahn.format_summary(result["echo"]))
            print(f"(echo pass: {time.monotonic() - started:.0f} s)")
        started = time.monotonic()
        result["ghosts"], result["left_behind"] = ghost_pass(workdir, parse_groups(args.ghost_cases), args.timeout)
        print(autobahn.format_summary(result["ghosts"]))
        print(f"(/ws/ pass: {time.monotonic() - started:.0f} s)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    (ARTIFACTS / "summary.json").write_text(json.dumps(result, indent=2))
    left = result["left_behind"]
    print("left behind after the /ws/ pass:", json.dumps(left))
    clean = not (left["connection_rows"] or left["hub_connections"] or left["hub_channels"] or left["online"])
    print("no ghost connections" if clean else "GHOST CONNECTIONS LEFT BEHIND")
    print(f"reports: {ARTIFACTS.relative_to(ROOT)}/echo/index.html, {ARTIFACTS.relative_to(ROOT)}/ghosts/index.html")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
