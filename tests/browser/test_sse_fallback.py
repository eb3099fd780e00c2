"""The dashboard in Chromium when WebSockets fail (the client falls back to SSE), and
when the browser goes offline or the page is hidden (it reconnects as soon as it can)."""

from __future__ import annotations

import signal

import pytest

from tests.browser.helpers import issue_row, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

RECORD = """
window.seen = [];
window.closes = [];
const client = window.dexter.client;
client.on("issue_update", (m) => { if (m.channel === "issues") window.seen.push(m.seq); });
client.on("close", (info) => window.closes.push(info));
window.trace = [];
client.on("status", (s, p, t) => window.trace.push(`${s}/${t}`));
"""


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def create_issue(server, token: str, title: str) -> str:
    status, body = server.request("POST", "/api/issues/", {"title": title, "level": "error"}, token)
    assert status == 201, body
    return str(body["id"])


def test_websockets_refused_the_dashboard_lives_on_sse_across_a_restart(sqlite_env, server_factory, new_page):
    # The server refuses every WebSocket handshake but serves HTTP, as a proxy that breaks them would.
    server = server_factory({**sqlite_env, "WEBSOCKET_ENABLED": "false"}).start()
    token = server.token("alice")
    page = sign_in(new_page(), server, "alice")
    expect(page.locator("#conn")).to_have_attribute("data-transport", "sse")
    expect(page.locator("#conn-text")).to_contain_text("SSE")
    assert page.evaluate("window.dexter.client.transport") == "sse"
    page.evaluate(RECORD)

    issue_id = create_issue(server, token, "KeyError in billing")
    expect(issue_row(page, issue_id)).to_have_attribute("data-status", "unresolved", timeout=3000)
    status, body = server.request("PATCH", f"/api/issues/{issue_id}/", {"status": "resolved"}, token)
    assert status == 200, body
    expect(issue_row(page, issue_id)).to_have_attribute("data-status", "resolved", timeout=3000)

    server.stop(signal.SIGTERM)
    expect(page.locator("#conn")).not_to_have_attribute("data-state", "open")
    # Changed while the server is down: stored, delivered to nobody yet.
    server.shell(
        "from issues.models import Issue\n"
        f"i = Issue.objects.get(pk={issue_id}); i.status = 'ignored'; i.save()\n"
        "Issue.objects.create(title='Made while down', level='warning')"
    )
    server.start()
    expect(issue_row(page, issue_id)).to_have_attribute("data-status", "ignored", timeout=30_000)
    expect(page.locator("li.issue", has_text="Made while down")).to_be_visible()
    expect(page.locator("#conn")).to_have_attribute("data-state", "open")
    expect(page.locator("#conn")).to_have_attribute("data-transport", "sse")
    seen = page.evaluate("window.seen")
    assert seen == list(range(seen[0], seen[0] + len(seen))), f"a gap or a repeat: {seen}"
    assert len(seen) >= 4


def test_offline_then_online_reconnects_within_a_second(server, new_page):
    page = sign_in(new_page(), server, "alice")
    page.evaluate(RECORD)
    page.context.set_offline(True)
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    assert page.evaluate("navigator.onLine") is False
    page.context.set_offline(False)
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=1000)
    assert page.evaluate("window.dexter.client.transport") == "websocket"


def test_visible_again_reconnects_within_a_second_instead_of_waiting_out_the_backoff(server, new_page):
    page = sign_in(new_page(), server, "alice")
    page.evaluate(RECORD)
    assert page.evaluate("window.dexter.client.transport") == "websocket"
    # A long backoff, so that only the page becoming visible can explain a reconnect within a second.
    page.evaluate("window.dexter.client.reconnectInterval = 60000")
    server.stop(signal.SIGTERM)
    page.wait_for_function("window.closes.some((c) => c.willReconnect && c.delay >= 30000)", timeout=30_000)
    server.start()
    page.evaluate(
        """
        Object.defineProperty(document, "visibilityState", { value: "visible", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
        """
    )
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=1000)
