"""The issue page /issues/<id>/ in Chromium, alice and bob in two browser contexts (docs/protocol.md 10-12).

Each sees the other join, type, comment and leave; the list shows how many are on it.
"""

from __future__ import annotations

import pytest

from tests.browser.helpers import issue_row, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def live(sqlite_env, server_factory):
    # A short reload grace: a page that goes away leaves after 1 s, not 5.
    return server_factory({**sqlite_env, "WEBSOCKET_PRESENCE_GRACE": "1"}).start()


def open_issue(page, server, username: str, issue_id: str):
    sign_in(page, server, username)
    issue_row(page, issue_id).get_by_role("link").click()
    page.wait_for_url(f"**/issues/{issue_id}/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    return page


def member(page, username: str):
    return page.locator(f'#member-list li[data-username="{username}"]')


def test_alice_and_bob_see_each_other_join_type_comment_and_leave(live, new_page):
    token = live.token("alice")
    status, body = live.request("POST", "/api/issues/", {"title": "TypeError in checkout", "level": "error"}, token)
    assert status == 201
    issue_id = str(body["id"])
    live.request("POST", "/api/events/", {"title": "TypeError in checkout", "level": "error"}, token)

    alice = open_issue(new_page(), live, "alice", issue_id)
    expect(alice.locator("#issue-title")).to_have_text("TypeError in checkout")
    expect(member(alice, "alice")).to_contain_text("viewing")
    bob = open_issue(new_page(), live, "bob", issue_id)

    # Join: each sees the other, with initials.
    expect(member(alice, "bob")).to_be_visible()
    expect(member(alice, "bob").locator(".avatar")).to_have_text("B")
    expect(member(bob, "alice")).to_be_visible()
    expect(alice.locator("#here-count")).to_have_text("(2)")

    # Type: "bob is typing...", and bob's activity becomes commenting.
    bob.locator("#comment-body").click()
    bob.locator("#comment-body").press_sequentially("Looks like the cart")
    expect(alice.locator("#typing")).to_have_text("bob is typing...")
    expect(member(alice, "bob")).to_have_attribute("data-activity", "commenting")

    # Comment: it arrives on alice's page live, and the typing line clears.
    bob.get_by_role("button", name="Comment").click()
    expect(alice.locator(".comment-body")).to_have_text(["Looks like the cart"])
    expect(alice.locator("#typing")).to_have_text("")

    # And the other way round.
    alice.locator("#comment-body").click()
    alice.locator("#comment-body").press_sequentially("On it")
    expect(bob.locator("#typing")).to_have_text("alice is typing...")
    alice.get_by_role("button", name="Comment").click()
    expect(bob.locator(".comment-body")).to_have_text(["Looks like the cart", "On it"])

    # Status and assignee controls: a change on one page shows on the other.
    alice.locator("#status-control").select_option("resolved")
    expect(bob.locator("#issue-status-badge")).to_have_text("resolved")
    bob.locator("#assignee-control").select_option(label="bob")
    expect(alice.locator("#assignee-control option:checked")).to_have_text("bob")

    # The sparkline: events per minute over the last hour, the current minute growing live.
    spark = alice.locator("#sparkline")
    expect(spark).to_have_attribute("data-total", "1")
    assert len(spark.get_attribute("data-counts").split(",")) == 60
    live.request("POST", "/api/events/", {"title": "TypeError in checkout", "level": "error"}, token)
    live.request("POST", "/api/events/", {"title": "TypeError in checkout", "level": "error"}, token)
    expect(spark).to_have_attribute("data-total", "3")
    assert int(spark.get_attribute("data-last")) >= 1  # >= : the minute may have turned in between
    expect(alice.locator("#spark-caption")).to_contain_text("3 events")

    # Leave: bob goes back to the list; alice sees him go (after the 1 s grace).
    bob.get_by_role("link", name="← All issues").click()
    expect(member(alice, "bob")).to_have_count(0, timeout=6_000)
    expect(alice.locator("#here-count")).to_have_text("(1)")
    # The list shows how many are on the issue: alice, still there.
    expect(issue_row(bob, issue_id).locator(".issue-people")).to_have_text("1 on it", timeout=8_000)
