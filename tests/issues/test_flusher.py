"""The trailing count flushes run on one thread per process (issues/flusher.py)."""

from __future__ import annotations

import threading
import time

import pytest

from issues.events import ingest_event
from issues.flusher import Flusher
from issues.models import Issue

from .helpers import published


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_flushes_run_in_due_order_on_one_thread_which_ends_when_idle():
    ran: list[tuple[int, str]] = []
    flusher = Flusher(lambda key: ran.append((key, threading.current_thread().name)), linger=lambda: 0.3)
    assert flusher.schedule(1, 0.15) and flusher.schedule(2, 0.05)
    assert not flusher.schedule(1, 0.0)  # already waiting: one pending per key
    wait_until(lambda: len(ran) == 2)
    assert [key for key, _ in ran] == [2, 1]
    assert len({name for _, name in ran}) == 1
    assert flusher.schedule(1, 0.0)  # due again once it ran
    wait_until(lambda: len(ran) == 3)
    assert ran[2][1] == ran[0][1]  # the same thread, still lingering
    wait_until(lambda: flusher._thread is None)
    assert flusher.schedule(3, 0.0)  # a new thread once the old one ended
    wait_until(lambda: len(ran) == 4)


@pytest.mark.django_db(transaction=True)
def test_a_bursts_last_count_is_announced_by_the_trailing_flush(settings):
    settings.ISSUES_COUNT_COALESCE_SECONDS = 0.3
    for _ in range(5):
        issue = ingest_event(title="burst", culprit="app.py").issue

    def announced() -> int | None:
        updates = [m for m in published("issues") if m["type"] == "issue_update"]
        return updates[-1]["data"]["event_count"] if updates else None

    wait_until(lambda: announced() == 5)
    assert Issue.objects.get(pk=issue.pk).announced_count == 5
