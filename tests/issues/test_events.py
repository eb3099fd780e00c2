"""Event ingestion: grouping, exact counts, coalesced announcements, and POST /api/events/."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.throttling import ScopedRateThrottle

from issues import events
from issues.events import flush_count, ingest_event
from issues.models import Event, Issue, derive_fingerprint
from realtime.models import Message

from .helpers import assert_issue_update, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def flushes(monkeypatch, settings):
    """Record trailing flushes instead of starting timer threads; a 60 s window."""
    settings.ISSUES_COUNT_COALESCE_SECONDS = 60
    calls = []
    monkeypatch.setattr(events, "schedule_flush", lambda issue_id, delay: calls.append((issue_id, delay)))
    return calls


def window_passes(issue: Issue) -> None:
    Issue.objects.filter(pk=issue.pk).update(announced_at=timezone.now() - timedelta(seconds=61))


def test_events_group_by_derived_fingerprint():
    first = ingest_event(title="TypeError", culprit="a.py in f")
    second = ingest_event(title="TypeError", culprit="a.py in f")
    other = ingest_event(title="TypeError", culprit="b.py in g")
    assert first.created and not second.created and other.created
    assert first.issue.pk == second.issue.pk != other.issue.pk
    assert second.event_count == 2 and Issue.objects.get(pk=first.issue.pk).event_count == 2
    assert first.issue.fingerprint == derive_fingerprint("TypeError", "a.py in f")
    assert Event.objects.filter(issue=first.issue).count() == 2


def test_explicit_fingerprint_groups_different_titles():
    a = ingest_event(title="Timeout after 3s", fingerprint="search-timeout")
    b = ingest_event(title="Timeout after 5s", fingerprint="search-timeout", level="warning")
    assert a.issue.pk == b.issue.pk and b.event_count == 2
    assert Issue.objects.get(pk=a.issue.pk).title == "Timeout after 3s"


def test_first_event_creates_issue_and_publishes_created(flushes):
    result = ingest_event(title="KeyError", culprit="x.py", level="fatal")
    [msg] = published("issues")
    data = assert_issue_update(msg, "issues", result.issue.pk, "created", seq=1)
    assert data["event_count"] == 1 and data["level"] == "fatal"
    assert len(published(f"issue:{result.issue.pk}")) == 1


def test_burst_is_coalesced_into_one_trailing_update(flushes, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        issue = ingest_event(title="burst").issue
        for _ in range(9):
            ingest_event(title="burst")
    assert Issue.objects.get(pk=issue.pk).event_count == 10
    assert [m["update_type"] for m in published("issues")] == ["created"]  # nothing per event
    assert {call[0] for call in flushes} == {issue.pk} and all(0 < delay <= 60 for _, delay in flushes)
    window_passes(issue)
    assert flush_count(issue.pk) is True
    msg = published("issues")[-1]
    data = assert_issue_update(msg, "issues", issue.pk, "updated", seq=2)
    assert data["event_count"] == 10 and data["changes"]["event_count"] == [1, 10]
    assert set(data["changes"]) == {"event_count", "last_seen"}
    assert published(f"issue:{issue.pk}")[-1]["data"] == data
    assert flush_count(issue.pk) is False  # nothing new: nothing published


def test_first_bump_after_a_quiet_window_is_announced_at_once(flushes):
    issue = ingest_event(title="quiet").issue
    window_passes(issue)
    result = ingest_event(title="quiet")  # published inside the event's own transaction
    data = assert_issue_update(published("issues")[-1], "issues", issue.pk, "updated")
    assert data["changes"]["event_count"] == [1, 2] and result.event_count == 2
    ingest_event(title="quiet")  # inside the new window: coalesced
    assert len(published("issues")) == 2


def test_flush_inside_the_window_waits(flushes, django_capture_on_commit_callbacks):
    issue = ingest_event(title="early").issue
    ingest_event(title="early")
    with django_capture_on_commit_callbacks(execute=True):
        assert flush_count(issue.pk) is False
    assert flushes and flushes[-1][0] == issue.pk and flushes[-1][1] > 50
    assert len(published("issues")) == 1


def test_rolled_back_ingestion_leaves_nothing(flushes):
    with pytest.raises(RuntimeError), transaction.atomic():
        ingest_event(title="rolled back")
        raise RuntimeError
    assert not Issue.objects.exists() and not Event.objects.exists() and not Message.objects.exists()


# --- POST /api/events/ ----------------------------------------------------------


def test_post_event_returns_202_with_issue_and_count(auth_api, alice, flushes):
    api = auth_api(alice)
    body = {"title": "TypeError in checkout", "culprit": "shop/checkout.py", "level": "error"}
    first = api.post("/api/events/", body, format="json")
    second = api.post("/api/events/", body, format="json")
    assert first.status_code == second.status_code == 202
    assert first.json() == {"issue_id": first.json()["issue_id"], "event_count": 1}
    assert second.json() == {"issue_id": first.json()["issue_id"], "event_count": 2}
    assert isinstance(first.json()["issue_id"], str)


def test_post_event_validates_and_needs_authentication(api, auth_api, alice):
    assert api.post("/api/events/", {"title": "x"}, format="json").status_code == 401
    bad = auth_api(alice).post("/api/events/", {"title": "x", "level": "catastrophic"}, format="json")
    assert bad.status_code == 400 and "level" in bad.json()
    assert auth_api(alice).post("/api/events/", {}, format="json").status_code == 400


def test_post_event_is_throttled(auth_api, alice, monkeypatch, flushes):
    from django.core.cache import cache

    cache.clear()
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"events": "2/min"})
    api = auth_api(alice)
    answers = [api.post("/api/events/", {"title": "t"}, format="json") for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    # Until the first two age out: a minute, and at most one slice of it more (realtime/throttles.py).
    assert 58 <= int(answers[2]["Retry-After"]) <= 63
    cache.clear()
