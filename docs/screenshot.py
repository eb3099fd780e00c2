"""Take docs/dashboard.png (and docs/dashboard-phone.png) of the dashboard with demo data.

    .venv/bin/python docs/screenshot.py

Starts its own daphne on a throwaway database (as the end-to-end tests do),
fills it through the HTTP API (issues, an alert, the events that trigger it),
signs alice and bob in with Debian's Chromium and photographs alice's page.
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

ISSUES = [
    ("TypeError: cannot read properties of undefined (reading 'total')", "error", "checkout/cart.js in computeTotal"),
    ("DatabaseError: deadlock detected", "fatal", "billing.tasks.charge_invoices"),
    ("Slow response: GET /api/search took 4.2 s", "warning", "search.views.SearchView"),
    ("KeyError: 'currency'", "error", "payments.stripe.webhook"),
    ("Deprecated call to legacy auth endpoint", "info", "accounts.legacy.login"),
]


def seed(server: LiveServer) -> dict[str, str]:
    """Demo issues and a threshold alert that fires; returns issue ids by title."""
    admin = server.token("admin")
    ids = {}
    for title, level, culprit in ISSUES:
        status, body = server.request(
            "POST", "/api/issues/", {"title": title, "level": level, "culprit": culprit}, admin
        )
        assert status == 201, body
        ids[title] = str(body["id"])
    alert = {
        "name": "Checkout error spike",
        "condition": "threshold",
        "threshold": 3,
        "window_seconds": 300,
        "severity": "critical",
        "cooldown_seconds": 600,
        "is_active": True,
    }
    status, body = server.request("POST", "/api/alerts/", alert, admin)
    assert status == 201, body
    title, level, culprit = ISSUES[0]
    for _ in range(5):
        status, body = server.request(
            "POST", "/api/events/", {"title": title, "level": level, "culprit": culprit}, admin
        )
        assert status == 202, body
    return ids


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = server_env({"DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3"})
        prepare_database(env)
        server = LiveServer(env, Path(tmp) / "server.log").start()
        try:
            ids = seed(server)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                alice = sign_in(browser.new_page(viewport={"width": 1280, "height": 560}), server, "alice")
                bob = sign_in(browser.new_context().new_page(), server, "bob")
                bob.get_by_label("Activity").fill("triaging the checkout spike")
                bob.get_by_label("My status").select_option("busy")
                expect(alice.locator('#presence-list li[data-username="bob"]')).to_have_attribute("data-status", "busy")
                slow, key_error = ids[ISSUES[2][0]], ids[ISSUES[3][0]]
                bob.get_by_label(f"Assignee for {ISSUES[0][0]}").select_option(label="bob")
                issue_row(bob, slow).get_by_role("button", name=f"Resolve {ISSUES[2][0]}").click()
                issue_row(alice, key_error).get_by_label(f"Assignee for {ISSUES[3][0]}").select_option(label="alice")
                expect(issue_row(alice, slow)).to_have_attribute("data-status", "resolved")
                expect(alice.locator("#alert-feed li")).not_to_have_count(0)
                alice.wait_for_timeout(1500)  # let the highlight of the last update fade
                alice.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
                alice.set_viewport_size({"width": 390, "height": 844})
                alice.screenshot(path=str(ROOT / "docs" / "dashboard-phone.png"), full_page=True)
                browser.close()
        finally:
            server.stop()
    print("wrote docs/dashboard.png and docs/dashboard-phone.png")


if __name__ == "__main__":
    main()
