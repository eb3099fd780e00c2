"""Take the README's screenshots: the first run's dashboard and the operations console.

    .venv/bin/python docs/screenshot.py

- docs/dashboard.png and docs/dashboard-phone.png: what a first `make run`
  shows. A throwaway database gets exactly what `make run` does (migrate,
  `demo_setup`, whose printed passwords are used to sign in), then Debian's
  Chromium signs alice in and photographs her page.
- docs/ops.png: /ops/ as admin, with alice and bob online and a few
  announcements and events going out, after half a minute of samples.

Each starts its own daphne (as the end-to-end tests do).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.browser.helpers import launch_chromium, sign_in  # noqa: E402
from tests.integration.conftest import USER_PASSWORD, LiveServer, manage, prepare_database, server_env  # noqa: E402

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


def first_run(browser, tmp: str) -> None:
    """The dashboard after `make run`'s own steps, signed in with the password it printed."""
    env = server_env({"DATABASE_URL": f"sqlite:///{tmp}/first-run.sqlite3"})
    manage(env, "migrate", "--noinput", "-v0")
    printed = manage(env, "demo_setup").stdout
    passwords = dict(re.findall(r"^\s+(admin|alice|bob)\s+(\S+)$", printed, re.M))
    server = LiveServer(env, Path(tmp) / "first-run.log").start()
    try:
        page = sign_in(browser.new_page(viewport={"width": 1280, "height": 560}), server, "alice", passwords["alice"])
        expect(page.locator("li.issue")).to_have_count(4)
        expect(page.locator("#alert-feed li")).not_to_have_count(0)
        page.wait_for_timeout(1500)  # let the highlight of the last update fade
        page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ROOT / "docs" / "dashboard-phone.png"), full_page=True)
        page.close()
    finally:
        server.stop()


def ops_console(browser, tmp: str) -> None:
    """/ops/ as admin while alice and bob work and announcements go out."""
    env = server_env({"DATABASE_URL": f"sqlite:///{tmp}/ops.sqlite3", "REALTIME_OPS_INTERVAL": "1"})
    prepare_database(env)
    server = LiveServer(env, Path(tmp) / "ops.log").start()
    try:
        seed(server)
        alice = sign_in(browser.new_context().new_page(), server, "alice")
        sign_in(browser.new_context().new_page(), server, "bob")
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.http + "/ops/")
        page.get_by_label("Username").fill("admin")
        page.get_by_label("Password").fill(USER_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=15_000)
        admin = server.token("admin")
        for n in range(30):
            server.request(
                "POST",
                "/api/realtime/broadcast/",
                {"channel": "global", "message": {"type": "announcement", "message": f"Deploy step {n} done"}},
                admin,
            )
            if n % 3 == 0:
                server.request("POST", "/api/events/", {"title": ISSUES[1][0], "level": "fatal"}, admin)
            page.wait_for_timeout(700)
        alice.close()  # a close shows under "Closes by code"
        page.wait_for_timeout(2500)
        page.screenshot(path=str(ROOT / "docs" / "ops.png"), full_page=True)
    finally:
        server.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        first_run(browser, tmp)
        ops_console(browser, tmp)
        browser.close()
    print("wrote docs/dashboard.png, docs/dashboard-phone.png and docs/ops.png")


if __name__ == "__main__":
    main()
