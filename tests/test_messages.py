"""dexter/messages.py: the message storage is built only for a request that uses it."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages.storage.fallback import FallbackStorage

from issues.models import Issue
from tests.conftest import access_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def storages_built(monkeypatch):
    built = []
    init = FallbackStorage.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(FallbackStorage, "__init__", counting)
    return built


def test_an_admin_message_is_stored_and_shown_on_the_next_page(client, staff, storages_built):
    issue = Issue.objects.create(title="TypeError in checkout")
    client.force_login(staff)
    response = client.post(f"/admin/issues/issue/{issue.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert "messages" in response.cookies  # the message went out in its cookie
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "was deleted successfully" in page.content.decode()
    # Read on that page, so gone from the cookie afterwards, and not shown again.
    assert page.cookies["messages"].value == ""
    assert "was deleted successfully" not in client.get(response["Location"]).content.decode()
    assert storages_built  # the pages built theirs


def test_an_api_post_builds_no_message_storage_and_leaves_the_cookie_alone(client, staff, storages_built):
    client.cookies["messages"] = "left-by-a-page"
    body = {"channel": "global", "message": {"type": "announcement", "message": "x"}}
    response = client.post(
        "/api/realtime/broadcast/",
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {access_token(staff)}",
    )
    assert response.status_code == 202, response.content
    assert storages_built == []
    assert "messages" not in response.cookies
