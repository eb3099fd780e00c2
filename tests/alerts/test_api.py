"""Permissions of /api/alerts/ (writes: staff) and of the broadcast and notify endpoints."""

import pytest
from django.contrib.auth.models import Permission

from alerts.models import Alert, AlertTrigger
from issues.models import Issue
from tests.issues.helpers import published

pytestmark = pytest.mark.django_db

ALERT = {"name": "High error rate", "condition": "threshold", "threshold": 100, "window_seconds": 60,
         "severity": "critical", "cooldown_seconds": 300}  # fmt: skip


def test_anonymous_gets_401_everywhere(api):
    alert = Alert.objects.create(name="a")
    assert api.get("/api/alerts/").status_code == 401
    assert api.get(f"/api/alerts/{alert.pk}/triggers/").status_code == 401
    assert api.post("/api/alerts/", ALERT, format="json").status_code == 401
    assert (
        api.post("/api/realtime/broadcast/", {"channel": "global", "message": {"type": "x"}}, format="json").status_code
        == 401
    )


def test_authenticated_user_reads_alerts_and_triggers(auth_api, alice):
    alert = Alert.objects.create(**ALERT)
    issue = Issue.objects.create(title="x")
    AlertTrigger.objects.create(alert=alert, issue=issue, message="m", severity="critical", value=120)
    api = auth_api(alice)
    listed = api.get("/api/alerts/").json()
    assert listed["count"] == 1
    assert listed["results"][0] == {"id": str(alert.pk), **ALERT, "pattern": "", "level": "", "is_active": True}
    triggers = api.get(f"/api/alerts/{alert.pk}/triggers/").json()
    assert triggers["count"] == 1
    row = triggers["results"][0]
    assert set(row) == {"id", "alert", "issue", "message", "severity", "value", "triggered_at"}
    assert row["alert"] == str(alert.pk) and row["issue"] == str(issue.pk) and row["value"] == 120
    assert api.get("/api/alerts/9999/triggers/").status_code == 404


def test_non_staff_gets_403_on_alert_writes(auth_api, alice):
    alert = Alert.objects.create(name="a")
    api = auth_api(alice)
    assert api.post("/api/alerts/", ALERT, format="json").status_code == 403
    assert api.patch(f"/api/alerts/{alert.pk}/", {"threshold": 5}, format="json").status_code == 403
    assert api.delete(f"/api/alerts/{alert.pk}/").status_code == 403
    assert Alert.objects.get(pk=alert.pk).threshold == 100


def test_staff_writes_alerts(auth_api, staff):
    api = auth_api(staff)
    created = api.post("/api/alerts/", ALERT, format="json")
    assert created.status_code == 201 and isinstance(created.json()["id"], str)
    alert_id = created.json()["id"]
    assert api.patch(f"/api/alerts/{alert_id}/", {"is_active": False}, format="json").json()["is_active"] is False
    bad = api.post("/api/alerts/", {**ALERT, "pattern": "a[b"}, format="json")
    assert bad.status_code == 400 and "pattern" in bad.json()
    assert api.post("/api/alerts/", {**ALERT, "condition": "sometimes"}, format="json").status_code == 400
    assert api.delete(f"/api/alerts/{alert_id}/").status_code == 204


def test_non_staff_gets_403_on_broadcast_and_notify(auth_api, alice, bob):
    api = auth_api(alice)
    broadcast = {"channel": "global", "message": {"type": "announcement", "message": "hi"}}
    assert api.post("/api/realtime/broadcast/", broadcast, format="json").status_code == 403
    notify = {"user_id": str(bob.pk), "message": {"kind": "message", "data": {"text": "hi"}}}
    assert api.post("/api/realtime/notify/", notify, format="json").status_code == 403
    assert published() == []


def test_service_account_with_publish_permission_may_broadcast_and_notify(auth_api, make_user, bob):
    service = make_user("ci-bot")
    service.user_permissions.add(Permission.objects.get(codename="publish_message", content_type__app_label="realtime"))
    assert not service.is_staff
    api = auth_api(service)
    broadcast = {"channel": "global", "message": {"type": "announcement", "message": "deploy done"}}
    response = api.post("/api/realtime/broadcast/", broadcast, format="json")
    assert response.status_code == 202
    [msg] = published("global")
    assert msg["type"] == "announcement" and msg["message"] == "deploy done" and msg["seq"] == 1
    notify = {"user_id": str(bob.pk), "message": {"kind": "message", "data": {"text": "hi"}}}
    assert api.post("/api/realtime/notify/", notify, format="json").status_code == 202
    [note] = published(f"user:{bob.pk}")
    assert note["type"] == "notification" and note["kind"] == "message"


def test_staff_may_broadcast(auth_api, staff):
    broadcast = {"channel": "issues", "message": {"type": "announcement", "message": "hi"}}
    assert auth_api(staff).post("/api/realtime/broadcast/", broadcast, format="json").status_code == 202


def test_issue_created_through_the_api_fires_a_match_alert(auth_api, alice):
    alert = Alert.objects.create(name="payments", condition="match", pattern="payment", severity="critical")
    created = auth_api(alice).post("/api/issues/", {"title": "payment declined", "level": "error"}, format="json")
    assert created.status_code == 201
    [trigger] = AlertTrigger.objects.all()
    assert trigger.alert == alert and str(trigger.issue_id) == created.json()["id"]
    [msg] = published(f"alert:{alert.pk}")
    assert msg["issue_id"] == created.json()["id"] and msg["data"]["value"] == 1
