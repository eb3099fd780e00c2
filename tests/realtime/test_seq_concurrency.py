"""Concurrent publishers in separate OS processes get contiguous, unique ``seq``s.

docs/protocol.md section 4: ``seq`` is per channel, starts at 1 and is contiguous,
with no gaps and no repeats, whoever publishes. Several processes (a server, a
worker, a management command) publish on the same channel at once, so the
numbering must hold across processes, on SQLite (the embedded default, one file)
and on PostgreSQL. Threads in one process would not do: they would share
Python's locks and one SQLite connection setup.

Each worker process publishes PER_WORKER messages on a channel that has no
ChannelSequence row yet, so the race to create that row is part of the test.
The workers wait at a barrier (a file) after ``django.setup()`` so that they
really overlap instead of starting one after another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
# 4 x 40 = 160 publications: enough to interleave heavily on two cores, each
# run well under 15 s including interpreter start-up and migrations.
PER_WORKER = 40
CHANNEL = "issues"

WORKER = r"""
import json, os, sys, time
import django

django.setup()
from django.db import connection
from realtime.publisher import publish

mode, arg = sys.argv[1], sys.argv[2]
if mode == "publish":
    worker, count, barrier, channel = int(arg), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    connection.ensure_connection()
    open(f"{barrier}.ready-{worker}", "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(f"{barrier}.go"):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.005)
    seqs = [publish(channel, {"type": "announcement", "message": f"{worker}:{i}"})["seq"] for i in range(count)]
    print(json.dumps(seqs))
else:
    from realtime.models import ChannelSequence, Message

    rows = list(Message.objects.filter(channel=arg).order_by("id").values_list("seq", "payload"))
    print(json.dumps({
        "rows": [[seq, json.loads(payload)["message"]] for seq, payload in rows],
        "last_seq": ChannelSequence.objects.get(channel=arg).last_seq,
    }))
"""


def _env(database_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBSOCKET_", "REALTIME_", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="dexter.settings",
        DATABASE_URL=database_url,
        SECRET_KEY="seq-concurrency-tests-only-" + "k" * 30,
        PYTHONUNBUFFERED="1",
    )
    return env


def _run(env: dict, *args: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _publish_concurrently(env: dict, tmp_path: Path) -> list[list[int]]:
    # Only the realtime tables (and the auth tables they refer to) are needed.
    _run(env, "manage.py", "migrate", "realtime", "--noinput", "-v0")
    barrier = str(tmp_path / "barrier")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, "publish", str(w), str(PER_WORKER), barrier, CHANNEL],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WORKERS)
    ]
    try:
        deadline = time.monotonic() + 60
        while not all(os.path.exists(f"{barrier}.ready-{w}") for w in range(WORKERS)):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in workers), [p.communicate() for p in workers if p.poll() is not None]
            time.sleep(0.02)
        Path(f"{barrier}.go").touch()
        outputs = [p.communicate(timeout=90) for p in workers]
    finally:
        for p in workers:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(workers, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    return [json.loads(out) for out, _ in outputs]


def _assert_contiguous(env: dict, per_worker_seqs: list[list[int]]) -> None:
    total = WORKERS * PER_WORKER
    stored = json.loads(_run(env, "-c", WORKER, "dump", CHANNEL))
    seqs = sorted(seq for seq, _ in stored["rows"])
    assert seqs == list(range(1, total + 1)), "seqs must be exactly 1..N: no gap, no duplicate"
    assert stored["last_seq"] == total
    # Every publication is stored once, with the seq its publisher was told.
    stored_by_text = {text: seq for seq, text in stored["rows"]}
    assert len(stored_by_text) == total
    for worker, seqs_of_worker in enumerate(per_worker_seqs):
        assert [stored_by_text[f"{worker}:{i}"] for i in range(PER_WORKER)] == seqs_of_worker
        # One publisher's messages are numbered in the order it published them.
        assert seqs_of_worker == sorted(seqs_of_worker)
    # And the workers did overlap: no worker got one unbroken block of numbers.
    interleaved = [s for s in per_worker_seqs if s[-1] - s[0] + 1 != len(s)]
    assert interleaved, "the workers ran one after another; the test proved nothing"


@pytest.mark.timeout(300)
def test_concurrent_publishers_get_contiguous_seqs_on_sqlite(tmp_path):
    env = _env(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    _assert_contiguous(env, _publish_concurrently(env, tmp_path))


@pytest.mark.services
@pytest.mark.timeout(300)
def test_concurrent_publishers_get_contiguous_seqs_on_postgresql(postgres_server, tmp_path):
    env = _env(postgres_server.create_database(f"seq_{os.getpid()}_{time.monotonic_ns()}"))
    _assert_contiguous(env, _publish_concurrently(env, tmp_path))
