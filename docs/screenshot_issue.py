"""Take docs/issue.png: the issue page /issues/<id>/ with alice and bob on it.

    .venv/bin/python docs/screenshot_issue.py

As docs/screenshot.py: its own daphne on a throwaway database, demo data through
the HTTP API (an issue and two comments; its events of the last hour written
with past times, so the per-minute sparkline has a shape, then a few live),
alice and bob in two Chromium contexts; bob is typing when alice's page is
photographed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser.helpers import issue_row, launch_chromium, sign_in  # noqa: E402
from tests.integration.conftest import LiveServer, prepare_database, server_env  # noqa: E402

TITLE = "TypeError: cannot read properties of undefined (reading 'total')"
CULPRIT = "checkout/cart.js in computeTotal"
EVENT = {"title": TITLE, "level": "error", "culprit": CULPRIT}


# Events per minute over the last hour, oldest first: a quiet start, the deploy, the climb.
PAST_EVENTS = """
from datetime import timedelta
from django.db.models import F
from django.utils import timezone
from issues.models import Event, Issue
per_minute = [0] * 30 + [1, 0, 2, 1, 0, 3, 5, 4, 8, 6, 9, 12, 7, 10, 14, 11, 9, 13, 16, 12, 15, 18, 14, 17, 20]
per_minute += [16, 19, 22, 18]
now = timezone.now()
rows = [
    Event(issue_id={issue_id}, received_at=now - timedelta(minutes=len(per_minute) - i, seconds=s))
    for i, n in enumerate(per_minute) for s in range(n)
]
Event.objects.bulk_create(rows)
Issue.objects.filter(pk={issue_id}).update(event_count=F("event_count") + len(rows))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env({"DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3"})
        prepare_database(env)
        server = LiveServer(env, Path(tmp) / "server.log").start()
        try:
            admin, bob_token = server.token("admin"), server.token("bob")
            status, body = server.request("POST", "/api/issues/", {**EVENT}, admin)
            assert status == 201, body
            issue_id = str(body["id"])
            server.shell(PAST_EVENTS.format(issue_id=issue_id))
            for _ in range(3):
                server.request("POST", "/api/events/", EVENT, admin)
            server.request(
                "POST", f"/api/issues/{issue_id}/comments/", {"body": "Started after the 14:02 deploy."}, bob_token
            )
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                alice = sign_in(browser.new_page(viewport={"width": 1280, "height": 720}), server, "alice")
                bob = sign_in(browser.new_context().new_page(), server, "bob")
                for page in (alice, bob):
                    issue_row(page, issue_id).get_by_role("link").click()
                    page.wait_for_url(f"**/issues/{issue_id}/")
                alice.locator("#comment-body").fill("")
                alice.locator("#comment-body").press_sequentially("Reproduced with an empty cart.")
                alice.get_by_role("button", name="Comment").click()
                expect(bob.locator(".comment-body")).to_have_count(2)
                alice.locator("#assignee-control").select_option(label="alice")
                for _ in range(3):
                    server.request("POST", "/api/events/", EVENT, admin)
                bob.locator("#comment-body").click()
                bob.locator("#comment-body").press_sequentially("I think it is the discount code")
                expect(alice.locator("#typing")).to_have_text("bob is typing...")
                expect(alice.locator('#member-list li[data-username="bob"]')).to_have_attribute(
                    "data-activity", "commenting"
                )
                alice.screenshot(path=str(ROOT / "docs" / "issue.png"), full_page=True)
                browser.close()
        finally:
            server.stop()
    print("wrote docs/issue.png")


if __name__ == "__main__":
    main()
