"""Signing in and out of the dashboard and the ops console (realtime/static/realtime/session.js), in Chromium."""

from __future__ import annotations

import base64
import json

import pytest

from tests.browser.helpers import sign_in
from tests.integration.conftest import USER_PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def fill_sign_in(page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def stored_session(page):
    return page.evaluate("JSON.parse(sessionStorage.getItem('dexter.auth') || 'null')")


def ended_session() -> str:
    """A stored session whose access token has expired and whose refresh token the server refuses."""
    claims = base64.urlsafe_b64encode(json.dumps({"exp": 1, "iat": 0, "user_id": 1}).encode()).decode().rstrip("=")
    return json.dumps({"access": f"x.{claims}.y", "refresh": "not-a-token", "username": "alice"})


@pytest.mark.parametrize("path", ["/", "/ops/"])
def test_a_wrong_password_says_so_and_stays_signed_out(server, new_page, path):
    page = new_page()
    page.goto(server.http + path)
    fill_sign_in(page, "alice", "wrong")
    expect(page.locator("#signin-error")).to_have_text("Wrong username or password.")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    assert stored_session(page) is None


def test_signed_in_on_the_dashboard_is_signed_in_on_the_console_and_sign_out_ends_both(server, new_page):
    page = sign_in(new_page(), server, "admin")
    page.goto(server.http + "/ops/")
    expect(page.locator("#me-name")).to_have_text("admin")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    assert stored_session(page) is None
    page.goto(server.http + "/")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#me")).to_be_hidden()


def test_signing_in_on_the_console_and_out_on_the_dashboard(server, new_page):
    page = new_page()
    page.goto(server.http + "/ops/")
    fill_sign_in(page, "admin", USER_PASSWORD)
    expect(page.locator("#me-name")).to_have_text("admin")
    assert stored_session(page)["username"] == "admin"

    page.goto(server.http + "/")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "closed")
    assert stored_session(page) is None


def test_a_session_the_server_will_not_refresh_returns_the_dashboard_to_sign_in(server, new_page):
    page = new_page()
    page.goto(server.http + "/")
    page.evaluate("(s) => sessionStorage.setItem('dexter.auth', s)", ended_session())
    page.reload()
    expect(page.locator("#signin-error")).to_have_text("Your session has expired. Please sign in again.")
    expect(page.locator("#signin")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    assert stored_session(page) is None

    fill_sign_in(page, "alice", USER_PASSWORD)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=10_000)
    expect(page.locator("#signin-error")).to_have_text("")


def test_a_session_the_server_will_not_refresh_returns_the_console_to_sign_in(server, new_page):
    page = new_page()
    page.goto(server.http + "/ops/")
    page.evaluate("(s) => sessionStorage.setItem('dexter.auth', s)", ended_session())
    page.reload()
    expect(page.locator("#signin")).to_be_visible(timeout=10_000)
    expect(page.locator("#app")).to_be_hidden()
    assert stored_session(page) is None
