"""The benchmark still runs: ``python -m bench.run --quick`` completes, loses nothing, writes JSON.

No timing is asserted: the figures depend on the machine (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_quick_benchmark_completes_without_loss(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = {r["variant"]: r for r in doc["results"]}
    assert set(rows) == {"dexter", "raw", "raw-http", "channels"}
    assert rows["raw-http"]["publisher"] == "http"
    for row in rows.values():
        assert row["steady"]["delivered"] == row["steady"]["expected"] > 0
        assert row["full"]["lost"] == 0
        assert row["closed_by_server"] == 0
        assert row["full"]["cpu_us_per_msg"] is not None
    assert "dexter" in doc["table"]


@pytest.mark.timeout(180)
def test_sse_against_websocket_benchmark_completes_without_loss(tmp_path):
    out = tmp_path / "sse.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sse", "--clients", "20", "--messages", "10", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    for kind in ("websocket", "sse"):
        assert doc[kind]["delivered"] == doc[kind]["expected"] == 20 * 30
        assert doc[kind]["cpu_us_per_delivered"] >= 0 and doc[kind]["kb_per_connection"] is not None
    assert "| sse |" in proc.stdout


@pytest.mark.timeout(180)
def test_slow_reader_benchmark_completes_and_the_slow_one_is_closed(tmp_path):
    """``python -m bench.slow_reader`` small: nothing lost, the reader that never reads closed (4500)."""
    out = tmp_path / "slow.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.slow_reader", "--clients", "10", "--publications", "150",
         "--size", "60000", "--rate", "20", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )  # fmt: skip
    doc = json.loads(out.read_text())
    normal, slow = doc["runs"]
    assert normal["lost"] == slow["lost"] == 0, proc.stdout[-3000:]
    assert slow["slow_reader_closed_by_server"] is True
    assert slow["rss_growth_mb"] < 50


@pytest.mark.timeout(180)
def test_publish_cost_runs_alone_and_loses_nothing(tmp_path):
    out = tmp_path / "cost.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.publish_cost", "--cost-requests", "20", "--cost-batches", "2"]
        + ["--cost-batch-size", "100", "--runs", "2", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert len(runs) == 2
    for run in runs:
        assert run["lost"] == 0 and run["events_stored"] == run["events_sent"] == 50 + 20 + 200
        assert run["issues_announced_with_final_count"] == run["issues"] > 0
