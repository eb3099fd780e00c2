"""Chromium under Playwright for the dashboard tests, against the live servers of tests/integration.

Skipped where /usr/bin/chromium is missing, a failure under REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import pytest

from tests.browser.helpers import CHROMIUM, launch_chromium
from tests.conftest import require_program
from tests.integration.conftest import server, server_factory, sqlite_env, template_db  # noqa: F401


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API marks an event loop as
    # running on the main thread until it stops, which breaks every async test
    # that pytest would run after this module while it is still open.
    require_program("chromium", CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser):
    """A page in its own browser context (its own storage, so its own signed-in user)."""
    contexts = []

    def make(viewport=None):
        context = browser.new_context(viewport=viewport or {"width": 1200, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield make
    for context in contexts:
        context.close()
