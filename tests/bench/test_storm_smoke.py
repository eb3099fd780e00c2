"""The reconnect-storm benchmark still runs: a small ``python -m bench.storm`` resumes every
client with nothing lost and counts the restarted server's queries. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_small_storm_resumes_everyone_and_counts_queries(tmp_path):
    out = tmp_path / "storm.json"
    cmd = [sys.executable, "-m", "bench.storm", "--clients", "30", "--users", "5", "--timeout", "120"]
    proc = subprocess.run([*cmd, "--output", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = json.loads(out.read_text())["runs"]
    assert run["failed_clients"] == 0 and run["clients_with_holes"] == 0 and run["repeats"] == 0
    assert run["all_caught_up_s"] is not None and run["connection_rows"] == 30
    assert run["queries"] > 0 and "SELECT realtime_message" in run["queries_by_kind"]
