"""/api/realtime/metrics/ of a real server: the families worth scraping move with what happened."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import websockets.sync.client as ws_client
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.integration


def scrape(server, token: str) -> dict[tuple[str, tuple], float]:
    req = urllib.request.Request(server.http + "/api/realtime/metrics/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def recv_until(ws, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if predicate(message):
            return message


def test_metrics_count_latency_closes_errors_rate_limits_and_replays(sqlite_env, server_factory):
    server = server_factory({**sqlite_env, "WEBSOCKET_MESSAGE_RATE": "2", "WEBSOCKET_MAX_MESSAGE_SIZE": "2000"}).start()
    token, admin = server.token("alice"), server.token("admin")
    with ws_client.connect(server.ws_url("metrics-a", token), open_timeout=10) as ws:
        recv_until(ws, lambda m: m["type"] == "connection")
        ws.send(json.dumps({"type": "subscribe", "channel": "global"}))
        recv_until(ws, lambda m: m["type"] == "subscribed")
        for n in range(3):
            status, _ = server.request(
                "POST",
                "/api/realtime/broadcast/",
                {"channel": "global", "message": {"type": "announcement", "message": f"m{n}"}},
                admin,
            )
            assert status == 202
            recv_until(ws, lambda m: m.get("type") == "announcement")
        ws.send(json.dumps({"type": "subscribe", "channel": "nosuchkind"}))
        recv_until(ws, lambda m: m.get("code") == "unknown_channel")
        time.sleep(1.5)  # let the token bucket refill before the replay
        ws.send(json.dumps({"type": "history", "channel": "global", "since": 0, "limit": 10}))
        recv_until(ws, lambda m: m["type"] == "history")
        for _ in range(8):  # past the rate: rate_limited errors, the connection stays
            ws.send(json.dumps({"type": "ping", "timestamp": "x"}))
        recv_until(ws, lambda m: m.get("code") == "rate_limited")
    with ws_client.connect(server.ws_url("metrics-b", token), open_timeout=10) as big:
        recv_until(big, lambda m: m["type"] == "connection")
        big.send("x" * 3000)
        with pytest.raises(ConnectionClosed):
            while True:
                big.recv(timeout=10)

    deadline = time.monotonic() + 10
    while True:
        samples = scrape(server, admin)
        if value(samples, "dexter_realtime_closes_total", code="4413") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert value(samples, "dexter_realtime_closes_total", code="4413") == 1
    assert value(samples, "dexter_realtime_errors_total", code="unknown_channel") == 1
    assert value(samples, "dexter_realtime_errors_total", code="rate_limited") >= 1
    assert value(samples, "dexter_realtime_rate_limited_total") >= 1
    assert value(samples, "dexter_realtime_history_replays_total") == 1
    assert value(samples, "dexter_realtime_history_replayed_messages_total") == 3
    assert ("dexter_realtime_send_buffer_closes_total", ()) in samples
    count = value(samples, "dexter_realtime_delivery_latency_seconds_count")
    assert count == 3, samples
    assert value(samples, "dexter_realtime_delivery_latency_seconds_bucket", le="+Inf") == 3
    assert 0 < value(samples, "dexter_realtime_delivery_latency_seconds_sum") < 3 * 2.0
