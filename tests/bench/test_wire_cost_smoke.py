"""``python -m bench.wire_cost`` still runs, and every socket gets every frame both ways. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_wire_cost_run_reaches_every_socket():
    cmd = [sys.executable, "-m", "bench.wire_cost", "--sockets", "20", "--publications", "5"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "the fan-out's Python over a bare send()" in proc.stdout
