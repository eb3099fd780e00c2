"""The dashboard works under its Content-Security-Policy: no violation, live updates still arrive."""

from __future__ import annotations

import pytest

from tests.browser.helpers import sign_in

pytestmark = [pytest.mark.integration, pytest.mark.browser]

RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


def test_dashboard_runs_under_its_csp_without_violations(server, new_page):
    page = new_page()
    page.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda msg: console.append(msg.text))
    response = page.request.get(server.http + "/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "'unsafe-inline'" not in policy
    sign_in(page, server, "alice")

    # Live: an issue created through the API shows on the page (socket, fetch, rendering all allowed).
    token = server.token("bob")
    status, body = server.request("POST", "/api/issues/", {"title": "CSP keeps this page live"}, token)
    assert status == 201, body
    from playwright.sync_api import expect

    expect(page.locator("li.issue", has_text="CSP keeps this page live")).to_have_count(1, timeout=5_000)
    assert page.evaluate("window.cspViolations") == []
    assert not [line for line in console if "Content Security Policy" in line], console
