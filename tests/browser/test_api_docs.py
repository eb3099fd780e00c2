"""/api/docs/ works with no network: Swagger UI comes from our own static files (drf-spectacular-sidecar)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_docs_page_references_only_local_static_files(server):
    import urllib.request

    with urllib.request.urlopen(server.http + "/api/docs/", timeout=10) as response:
        html = response.read().decode()
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""["']([^"'\s]+\.(?:js|css|png))["']""", html)
    assert urls, html
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{url} is not on this server"
        if url.endswith((".js", ".css", ".png")):
            with urllib.request.urlopen(server.http + url, timeout=10) as asset:
                assert asset.status == 200, url


def test_docs_page_renders_with_the_network_cut_off(server, new_page):
    page = new_page()
    outside = []

    def only_this_server(route):
        if urlsplit(route.request.url).netloc == f"127.0.0.1:{server.port}":
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_this_server)
    page.goto(server.http + "/api/docs/")
    from playwright.sync_api import expect

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Dexter API", timeout=10_000)
    expect(page.locator(".opblock-summary-path", has_text="/api/issues/").first).to_be_visible()
    assert outside == []
