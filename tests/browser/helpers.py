"""Starting Debian's Chromium and signing in to the dashboard: shared by the tests and docs/screenshot.py."""

from __future__ import annotations

from tests.integration.conftest import USER_PASSWORD

CHROMIUM = "/usr/bin/chromium"
# No sandbox (containers run as root), no GPU, and nothing that phones home
# or updates itself while a test runs.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch_chromium(playwright):
    """Debian's Chromium, headless. Playwright is never allowed to download a browser of its own."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def sign_in(page, server, username: str, password: str = USER_PASSWORD):
    """Open the dashboard, sign in through the form and wait until its socket is live."""
    from playwright.sync_api import expect

    page.goto(server.http + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#me-name")).to_have_text(username)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    return page


def issue_row(page, issue_id):
    return page.locator(f'li.issue[data-issue-id="{issue_id}"]')
