"""Batch ingestion: POST /api/events/ with a list, one transaction per batch, today's coalescing."""

from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from issues import events
from issues.events import flush_count
from issues.models import Event, Issue
from realtime.models import Message

from .helpers import assert_issue_update, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def flushes(monkeypatch, settings):
    settings.ISSUES_COUNT_COALESCE_SECONDS = 60
    calls = []
    monkeypatch.setattr(events, "schedule_flush", lambda issue_id, delay: calls.append((issue_id, delay)))
    return calls


def quiet_windows() -> None:
    Issue.objects.update(announced_at=timezone.now() - timedelta(seconds=61))


def batch(*titles: str) -> list[dict]:
    return [{"title": t, "culprit": "app.py", "level": "error"} for t in titles]


def updates_per_issue() -> Counter:
    return Counter(m["issue_id"] for m in published("issues") if m["update_type"] == "updated")


def test_a_list_is_grouped_counted_and_answered_in_order(auth_api, alice, flushes):
    api = auth_api(alice)
    reply = api.post("/api/events/", batch("A", "B", "A", "A", "C"), format="json")
    assert reply.status_code == 202
    body = reply.json()
    ids = [r["issue_id"] for r in body]
    assert ids[0] == ids[2] == ids[3] and len(set(ids)) == 3
    assert [r["event_count"] for r in body] == [1, 1, 2, 3, 1]
    assert dict(Issue.objects.values_list("title", "event_count")) == {"A": 3, "B": 1, "C": 1}
    assert Event.objects.count() == 5
    # One `created` per new issue, carrying its count.
    created = {m["data"]["title"]: m["data"]["event_count"] for m in published("issues")}
    assert created == {"A": 3, "B": 1, "C": 1}


def test_exactly_one_issue_update_per_changed_issue_per_window(
    auth_api, alice, flushes, django_capture_on_commit_callbacks
):
    api = auth_api(alice)
    api.post("/api/events/", batch("A", "B", "C"), format="json")
    quiet_windows()
    assert api.post("/api/events/", batch(*["A", "B"] * 50), format="json").status_code == 202
    # Each changed issue announced once, at once; the untouched one not at all.
    assert updates_per_issue() == {str(Issue.objects.get(title=t).pk): 1 for t in ("A", "B")}
    [a_update] = [m for m in published("issues") if m["update_type"] == "updated" and m["data"]["title"] == "A"]
    data = assert_issue_update(a_update, "issues", Issue.objects.get(title="A").pk, "updated")
    assert data["changes"]["event_count"] == [1, 51]

    # Another batch: A and B are inside their window (nothing at once, one trailing
    # flush each); C's window is quiet, so its first bump is announced at once.
    pk = dict(Issue.objects.values_list("title", "pk"))
    with django_capture_on_commit_callbacks(execute=True):
        api.post("/api/events/", batch(*["A", "B", "C"] * 10), format="json")
    assert updates_per_issue() == {str(pk["A"]): 1, str(pk["B"]): 1, str(pk["C"]): 1}
    assert sorted({issue_id for issue_id, _ in flushes}) == sorted([pk["A"], pk["B"]])
    quiet_windows()
    assert [flush_count(pk[t]) for t in "ABC"] == [True, True, False]
    assert updates_per_issue() == {str(pk["A"]): 2, str(pk["B"]): 2, str(pk["C"]): 1}
    # Every count that changed is stored and was announced with its final value.
    final = {m["issue_id"]: m["data"]["event_count"] for m in published("issues")}
    assert final == {str(pk): n for pk, n in Issue.objects.values_list("pk", "event_count")}
    assert dict(Issue.objects.values_list("title", "event_count")) == {"A": 61, "B": 61, "C": 11}


def test_a_batch_is_one_transaction_with_a_few_queries_per_issue(auth_api, alice, flushes):
    api = auth_api(alice)
    api.post("/api/events/", batch("A", "B"), format="json")
    quiet_windows()
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/api/events/", batch(*["A", "B"] * 250), format="json").status_code == 202
    # Independent of the 500 events: a handful per issue (count, announce, publish, alerts).
    assert len(queries) < 40, [q["sql"] for q in queries]


def test_batch_limits_and_bad_items_are_clear_errors(auth_api, alice, settings, flushes):
    settings.ISSUES_EVENTS_BATCH_LIMIT = 3
    api = auth_api(alice)
    too_many = api.post("/api/events/", batch("a", "b", "c", "d"), format="json")
    assert too_many.status_code == 400 and "at most 3" in str(too_many.json())
    assert api.post("/api/events/", [], format="json").status_code == 400
    bad = api.post("/api/events/", [{"title": "ok"}, {"title": "x", "level": "catastrophic"}], format="json")
    assert bad.status_code == 400 and "level" in str(bad.json()[1])
    # Nothing of a rejected batch is stored.
    assert not Issue.objects.exists() and not Message.objects.exists()
    assert api.post("/api/events/", batch("fine"), format="json").status_code == 202


def test_an_event_of_a_known_issue_inside_its_window_is_two_statements(flushes):
    """The hot path of ingestion: the count's UPDATE ... RETURNING (which reads the
    issue too) and the Event's INSERT; nothing else reaches the database but the
    transaction itself (the alerts' active rules are kept per process, alerts/rules.py)."""
    first = events.ingest_event(title="hot", culprit="app.py")
    with CaptureQueriesContext(connection) as queries:
        second = events.ingest_event(title="hot", culprit="app.py")
    assert second.issue.pk == first.issue.pk and second.event_count == 2
    statements = [q["sql"].split()[0].upper() for q in queries]
    assert statements.count("UPDATE") == 1 and statements.count("INSERT") == 1, statements
    assert statements.count("SELECT") == 0, statements
    issue = Issue.objects.get(pk=first.issue.pk)
    assert issue.event_count == 2 and issue.events.count() == 2
    # The issue handed to the alerts and the result is the row as stored, datetimes aware.
    assert second.issue.last_seen == issue.last_seen and second.issue.last_seen.tzinfo is not None
    assert second.issue.title == "hot" and second.issue.announced_count == issue.announced_count
