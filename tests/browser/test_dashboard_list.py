"""The dashboard's issue list and feeds in Chromium: order, unknown issues, announcements, alert details."""

from __future__ import annotations

import json

import pytest

from tests.browser.helpers import issue_row, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LIVE_WITHIN_MS = 2_000


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def create_issue(server, token: str, title: str) -> str:
    status, body = server.request("POST", "/api/issues/", {"title": title, "level": "error"}, token)
    assert status == 201, body
    return str(body["id"])


def listed_ids(page) -> list[str]:
    return page.locator("li.issue").evaluate_all("rows => rows.map(r => r.dataset.issueId)")


def test_issue_list_is_newest_first_for_everyone_and_live_inserts_go_on_top(server, new_page):
    token = server.token("alice")
    ids = [create_issue(server, token, f"Issue number {n}") for n in range(4)]
    alice = sign_in(new_page(), server, "alice")
    expect(alice.locator("li.issue")).to_have_count(4)
    assert listed_ids(alice) == ids[::-1]

    # An event on the oldest makes it the most recently seen: the API's default
    # order would put it first; the list stays in creation order, newest first.
    status, _ = server.request("POST", "/api/events/", {"title": "Issue number 0", "level": "error"}, token)
    assert status == 202
    bob = sign_in(new_page(), server, "bob")
    expect(bob.locator("li.issue")).to_have_count(4)
    assert listed_ids(bob) == listed_ids(alice) == ids[::-1]
    newest = create_issue(server, token, "Issue number 4")
    for page in (alice, bob):
        expect(page.locator("li.issue").first).to_have_attribute("data-issue-id", newest, timeout=LIVE_WITHIN_MS)
        assert listed_ids(page) == [newest, *ids[::-1]]


def test_update_for_an_unknown_issue_fetches_it_or_is_ignored(server, new_page):
    page = sign_in(new_page(), server, "alice")
    page.wait_for_function("window.dexter.client.lastSeq('issues') !== undefined")
    # The seed's own example, for an issue that does not exist: no phantom row.
    server.shell(
        "from realtime.manager import WebSocketManager\n"
        "WebSocketManager().notify_issue_update_sync(issue_id='123', update_type='resolved',"
        " data={'resolved_by': '1', 'title': 'Issue Title'})\n"
    )
    # An issue the page never heard of (made without signals), then a partial update about it.
    hidden = json.loads(
        server.shell(
            "from issues.models import Issue\n"
            "[i] = Issue.objects.bulk_create([Issue(title='Made in bulk', fingerprint='bulk-1', status='ignored')])\n"
            "print(i.pk)\n"
        ).splitlines()[-1]
    )
    server.shell(
        "from realtime.manager import WebSocketManager\n"
        f"WebSocketManager().notify_issue_update_sync(issue_id='{hidden}', update_type='updated',"
        " data={'title': 'Made in bulk'})\n"
    )
    row = issue_row(page, hidden)
    expect(row).to_have_count(1, timeout=LIVE_WITHIN_MS)
    # Drawn from the server's row, not guessed from the message: its real status.
    expect(row).to_have_attribute("data-status", "ignored")
    expect(issue_row(page, "123")).to_have_count(0)
    expect(page.locator("li.issue", has_text="Issue Title")).to_have_count(0)
    expect(page.locator("li.issue")).to_have_count(1)


def test_announcement_on_global_shows_as_a_banner(server, new_page):
    page = sign_in(new_page(), server, "alice")
    page.wait_for_function("window.dexter.client.lastSeq('global') !== undefined")
    status, body = server.request(
        "POST",
        "/api/realtime/broadcast/",
        {"channel": "global", "message": {"type": "announcement", "message": "System maintenance at 22:00"}},
        server.token("admin"),
    )
    assert status in (200, 201, 202), body
    announcement = page.locator("#announcement")
    expect(announcement).to_be_visible(timeout=LIVE_WITHIN_MS)
    expect(announcement).to_contain_text("System maintenance at 22:00")
    announcement.get_by_role("button", name="Dismiss").click()
    expect(announcement).to_be_hidden()


def test_match_alert_shows_what_matched_not_null(server, new_page):
    admin = server.token("admin")
    status, body = server.request(
        "POST",
        "/api/alerts/",
        {"name": "Checkout", "condition": "match", "pattern": "checkout", "severity": "critical"},
        admin,
    )
    assert status == 201, body
    status, body = server.request(
        "POST", "/api/alerts/", {"name": "Busy", "condition": "threshold", "threshold": 1, "window_seconds": 60}, admin
    )
    assert status == 201, body
    page = sign_in(new_page(), server, "alice")
    page.wait_for_function("window.dexter.client.lastSeq('alerts') !== undefined")
    token = server.token("alice")
    create_issue(server, token, "TypeError in checkout")  # through the API, not an event
    match = page.locator("li.alert", has_text="Checkout")
    expect(match).to_have_count(1, timeout=LIVE_WITHIN_MS)
    expect(match.locator(".alert-meta")).to_contain_text("matched")
    expect(match.locator(".alert-meta")).not_to_contain_text("null")
    for _ in range(2):
        server.request("POST", "/api/events/", {"title": "cache down", "level": "error"}, token)
    threshold = page.locator("li.alert", has_text="High error rate")
    expect(threshold).to_have_count(1, timeout=LIVE_WITHIN_MS)
    expect(threshold.locator(".alert-meta")).to_contain_text("2 events > 1")
