"""The operations console (/ops/) in Chromium against a real server: live, from the same counters, staff only."""

from __future__ import annotations

import json

import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def ops_server(sqlite_env, server_factory):
    return server_factory({**sqlite_env, "REALTIME_OPS_INTERVAL": "0.5"}).start()


def open_console(page, server, username: str):
    from tests.integration.conftest import USER_PASSWORD

    page.goto(server.http + "/ops/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_console_shows_a_connection_that_opens_and_the_deliveries_of_a_broadcast(ops_server, new_page):
    server = ops_server
    page = open_console(new_page(), server, "admin")
    expect(page.locator("#conn")).to_have_attribute("data-state", "open", timeout=15_000)
    expect(page.locator("#servers tr")).to_have_count(1)  # samples are coming
    expect(page.locator('#channels tr[data-channel="ops"]')).to_contain_text("1")

    token = server.token("alice")
    with ws_client.connect(server.ws_url("alice-laptop", token), open_timeout=10) as alice:
        assert json.loads(alice.recv(timeout=10))["type"] == "connection"
        alice.send(json.dumps({"type": "subscribe", "channel": "global"}))
        assert json.loads(alice.recv(timeout=10))["type"] == "subscribed"
        row = page.locator('#connections tr[data-client-id="alice-laptop"]')
        expect(row).to_contain_text("alice")
        expect(page.locator('#channels tr[data-channel="global"]')).to_contain_text("1")

        # A burst of announcements: the deliveries chart shows them (from hub.stats, as /metrics does).
        admin = server.token("admin")
        for n in range(20):
            status, _ = server.request(
                "POST",
                "/api/realtime/broadcast/",
                {"channel": "global", "message": {"type": "announcement", "message": f"burst {n}"}},
                admin,
            )
            assert status == 202
        for _ in range(20):
            assert json.loads(alice.recv(timeout=10))["type"] == "announcement"
        page.wait_for_function(
            "() => Math.max(0, ...window.dexterOps.charts.throughput.data[2].filter((v) => v !== null)) >= 5",
            timeout=10_000,
        )
        page.wait_for_function(
            "() => window.dexterOps.charts.latency.data[2].some((v) => v !== null && v > 0)", timeout=10_000
        )

        # The disconnect action closes alice's socket with 4403.
        row.get_by_role("button", name="Disconnect alice (alice-laptop)").click()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                alice.recv(timeout=10)
        assert closed.value.rcvd.code == 4403
    expect(page.locator('#connections tr[data-client-id="alice-laptop"]')).to_have_count(0)
    expect(page.locator('#close-codes li[data-code="4403"]')).to_be_visible()
    expect(page.locator('#recent-closes tr[data-code="4403"]').first).to_contain_text("alice")


def test_console_and_its_data_are_staff_only(ops_server, new_page):
    server = ops_server
    page = open_console(new_page(), server, "alice")
    expect(page.locator("#forbidden")).to_be_visible(timeout=15_000)
    expect(page.locator("#app")).to_be_hidden()
    page.wait_for_timeout(1_500)  # three sample intervals
    assert page.evaluate("window.dexterOps.samples.size") == 0

    alice, admin = server.token("alice"), server.token("admin")
    with ws_client.connect(server.ws_url("nosy", alice), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connection"
        ws.send(json.dumps({"type": "subscribe", "channel": "ops"}))
        reply = json.loads(ws.recv(timeout=10))
        assert reply["type"] == "error" and reply["code"] == "forbidden"
    with ws_client.connect(server.ws_url("anon"), open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "connection"
        ws.send(json.dumps({"type": "subscribe", "channel": "ops"}))
        assert json.loads(ws.recv(timeout=10))["code"] == "forbidden"
    assert server.request("GET", "/api/realtime/channels/ops/history/", token=alice)[0] == 403
    assert server.request("GET", "/api/realtime/channels/ops/history/")[0] == 401
    assert server.request("POST", "/api/realtime/connections/abc/disconnect/", {}, alice)[0] == 403
    assert server.request("POST", "/api/realtime/connections/abc/disconnect/", {})[0] == 401
    assert server.request("POST", "/api/realtime/connections/abc/disconnect/", {}, admin)[0] == 404
    assert server.request("GET", "/api/realtime/channels/ops/history/", token=admin)[0] == 200
