"""The Realtime-Position header of docs/protocol.md section 12 on the issue and alert reads."""

import pytest
from django.db import connection

from alerts.models import Alert
from issues.models import Comment, Issue
from realtime.position import parse_position, read_snapshot
from realtime.publisher import latest_seq

pytestmark = pytest.mark.django_db(transaction=True)


def position(response) -> dict[str, int]:
    assert response.status_code == 200, response.content
    return parse_position(response["Realtime-Position"])


def test_issue_list_and_detail_carry_the_position_of_their_channel(auth_api, alice):
    api = auth_api(alice)
    assert position(api.get("/api/issues/")) == {"issues": 0}
    issue = Issue.objects.create(title="first")
    Issue.objects.create(title="second")
    issue.status = "resolved"
    issue.save()
    assert position(api.get("/api/issues/")) == {"issues": 3} == {"issues": latest_seq("issues")}
    assert position(api.get(f"/api/issues/{issue.pk}/")) == {f"issue:{issue.pk}": 2}
    Comment.objects.create(issue=issue, author=alice, body="seen")
    assert position(api.get(f"/api/issues/{issue.pk}/comments/")) == {f"issue:{issue.pk}": 3}
    # Not a read of state: no header, and errors carry none either.
    assert "Realtime-Position" not in api.get("/api/issues/999999/")
    created = api.post("/api/issues/", {"title": "third"}, format="json")
    assert created.status_code == 201 and "Realtime-Position" not in created


def test_alert_list_and_detail_carry_the_position_of_their_channel(auth_api, alice):
    alert = Alert.objects.create(name="errors", condition="threshold", threshold=1, window_seconds=60)
    api = auth_api(alice)
    assert position(api.get("/api/alerts/")) == {"alerts": latest_seq("alerts")}
    assert position(api.get(f"/api/alerts/{alert.pk}/")) == {f"alert:{alert.pk}": latest_seq(f"alert:{alert.pk}")}
    assert position(api.get(f"/api/alerts/{alert.pk}/triggers/")) == {f"alert:{alert.pk}": 0}


def test_read_snapshot_is_one_transaction_that_sees_no_later_commit(alice):
    """Inside the snapshot, a commit made meanwhile by another connection is invisible."""
    import threading

    Issue.objects.create(title="before")
    with read_snapshot():
        assert Issue.objects.count() == 1
        assert not connection.get_autocommit() or connection.vendor == "sqlite"

        def other_writer():
            from django.db import connections

            Issue.objects.create(title="meanwhile")
            connections.close_all()

        thread = threading.Thread(target=other_writer)
        thread.start()
        thread.join(20)
        assert Issue.objects.count() == 1 and latest_seq("issues") == 1
    assert Issue.objects.count() == 2 and latest_seq("issues") == 2
