"""Admin saves name the admin as the actor; demo_setup is idempotent."""

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import RequestFactory

from alerts.models import Alert
from issues.models import Comment, Issue

from .helpers import published

pytestmark = pytest.mark.django_db


def test_admin_save_model_publishes_resolved_by_admin_user(staff):
    issue = Issue.objects.create(title="x")
    request = RequestFactory().post("/admin/")
    request.user = staff
    issue.status = "resolved"
    admin.site._registry[Issue].save_model(request, issue, form=None, change=True)
    msg = published(f"issue:{issue.pk}")[-1]
    assert msg["update_type"] == "resolved" and msg["data"]["resolved_by"] == str(staff.pk)


def test_admin_change_form_resolves_and_publishes(client, staff):
    issue = Issue.objects.create(title="x", culprit="c")
    client.force_login(staff)
    form = {
        "title": "x", "culprit": "c", "level": "error", "status": "resolved", "assignee": "",
        "fingerprint": issue.fingerprint,
        "comments-TOTAL_FORMS": "1", "comments-INITIAL_FORMS": "0",
        "comments-MIN_NUM_FORMS": "0", "comments-MAX_NUM_FORMS": "1000",
        "comments-0-body": "resolved in the admin", "comments-0-issue": str(issue.pk),
    }  # fmt: skip
    response = client.post(f"/admin/issues/issue/{issue.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    types = [m["update_type"] for m in published(f"issue:{issue.pk}")]
    assert types == ["created", "resolved", "commented"]
    assert published(f"issue:{issue.pk}")[1]["data"]["resolved_by"] == str(staff.pk)
    assert Comment.objects.get(issue=issue).author == staff


def test_demo_setup_is_idempotent():
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    counts = (Issue.objects.count(), Comment.objects.count(), Alert.objects.count())
    assert counts[0] >= 3 and counts[1] >= 1 and counts[2] == 2
    messages = len(published())
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    assert (Issue.objects.count(), Comment.objects.count(), Alert.objects.count()) == counts
    assert len(published()) == messages
