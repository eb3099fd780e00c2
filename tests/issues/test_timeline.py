"""GET /api/issues/<id>/events/timeline/: the issue page's sparkline, events per time bucket."""

from datetime import UTC, datetime, timedelta

import pytest

from issues.models import Event, Issue
from realtime.position import HEADER, parse_position, positions

pytestmark = pytest.mark.django_db

URL = "/api/issues/{}/events/timeline/"


def test_counts_events_per_minute_over_the_last_hour(auth_api, alice):
    issue = Issue.objects.create(title="x", event_count=5)
    other = Issue.objects.create(title="y")
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    for minutes_ago in (0, 0, 2, 59, 61):  # the last one is outside the hour
        Event.objects.create(issue=issue, received_at=now - timedelta(minutes=minutes_ago))
    Event.objects.create(issue=other, received_at=now)
    response = auth_api(alice).get(URL.format(issue.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["bucket"] == "minute" and body["bucket_seconds"] == 60 and len(body["counts"]) == 60
    start = datetime.fromisoformat(body["start"].replace("Z", "+00:00"))
    assert start.second == 0 and start + timedelta(minutes=59) <= datetime.now(UTC)
    assert body["counts"][-1] == 2 and body["counts"][-3] == 1 and body["counts"][0] == 1
    assert sum(body["counts"]) == 4 and body["event_count"] == 5
    assert parse_position(response[HEADER]) == positions([f"issue:{issue.pk}"])


def test_hours_and_days_and_bounds(auth_api, alice):
    issue = Issue.objects.create(title="x")
    Event.objects.create(issue=issue, received_at=datetime.now(UTC) - timedelta(hours=3))
    api = auth_api(alice)
    body = api.get(URL.format(issue.pk), {"bucket": "hour", "buckets": 24}).json()
    assert body["bucket_seconds"] == 3600 and len(body["counts"]) == 24 and body["counts"][-4] == 1
    Event.objects.create(issue=issue)
    days = api.get(URL.format(issue.pk), {"bucket": "day", "buckets": 7}).json()["counts"]
    assert len(days) == 7 and sum(days) == 2 and days[-1] >= 1
    assert api.get(URL.format(issue.pk), {"bucket": "week"}).status_code == 400
    assert api.get(URL.format(issue.pk), {"buckets": 0}).status_code == 400
    assert api.get(URL.format(issue.pk), {"buckets": 1000}).status_code == 400
    assert api.get(URL.format(99999)).status_code == 404


def test_anonymous_is_401(api):
    issue = Issue.objects.create(title="x")
    assert api.get(URL.format(issue.pk)).status_code == 401
