"""The WebSocket consumer through Channels' WebsocketCommunicator: docs/protocol.md sections 1-5."""

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from realtime.publisher import publish
from tests.conftest import access_token
from tests.realtime.helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)

apublish = database_sync_to_async(publish)


def short_token(user, seconds: float) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=seconds))
    return str(token)


# --- connecting ---------------------------------------------------------------


async def test_anonymous_connection_gets_connection_message():
    client = Client("/ws/tab-1/")
    assert (await client.connect())[0]
    hello = client.hello
    assert hello["type"] == "connection" and hello["protocol"] == 1 and hello["client_id"] == "tab-1"
    assert hello["authenticated"] is False and hello["user"] is None
    assert hello["heartbeat_interval"] == 30 and hello["server_time"].endswith("Z")
    assert len(hello["connection_id"]) >= 16
    await client.close()


async def test_trailing_slash_is_optional():
    client = Client("/ws/tab-1")
    assert (await client.connect())[0]
    await client.close()


async def test_token_in_query_string_authenticates(alice):
    client = Client(token=access_token(alice))
    await client.connect()
    assert client.hello["authenticated"] is True
    assert client.hello["user"] == {"id": str(alice.pk), "username": "alice"}
    await client.close()


@pytest.mark.parametrize("kind", ["garbage", "refresh", "expired", "inactive"])
async def test_bad_token_gets_error_then_4401(alice, kind):
    if kind == "garbage":
        token, code = "not-a-jwt", "token_invalid"
    elif kind == "refresh":  # a refresh token must not open a socket
        # With the token blacklist app, making one records it (a query): off the event loop.
        token = await database_sync_to_async(lambda: str(RefreshToken.for_user(alice)))()
        code = "token_invalid"
    elif kind == "expired":
        token, code = short_token(alice, -10), "token_expired"
    else:
        token, code = access_token(alice), "token_invalid"
        alice.is_active = False
        await database_sync_to_async(alice.save)()
    client = Client(token=token)
    connected, _ = await client.comm.connect()
    assert connected
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == code
    assert await client.closed_with() == 4401


@pytest.mark.parametrize("client_id", ["", "x" * 65, "tab%201", "t%C3%A4b"])
async def test_bad_client_id_is_refused_at_handshake(client_id):
    connected, _ = await Client(f"/ws/{client_id}/").connect()
    assert connected is False


async def test_disallowed_origin_is_refused_and_allowed_ones_pass(settings):
    settings.WEBSOCKET_ALLOWED_ORIGINS = ["https://dexter.example.com"]
    assert (await Client(headers=[(b"origin", b"https://evil.example.com")]).connect())[0] is False
    ok = Client(headers=[(b"origin", b"https://dexter.example.com")])
    assert (await ok.connect())[0] is True
    await ok.close()
    no_origin = Client("/ws/tab-2/")
    assert (await no_origin.connect())[0] is True
    await no_origin.close()


async def test_origin_defaults_to_allowed_hosts():
    assert (await Client(headers=[(b"origin", b"http://localhost:8000")]).connect())[0] is True
    assert (await Client("/ws/t2/", headers=[(b"origin", b"http://attacker.test")]).connect())[0] is False


async def test_disabled_endpoint_refuses_every_handshake(settings):
    settings.WEBSOCKET_ENABLED = False
    assert (await Client().connect())[0] is False


async def test_past_max_connections_closes_with_4503(settings):
    settings.WEBSOCKET_MAX_CONNECTIONS = 1
    first = Client("/ws/a/")
    await first.connect()
    second = Client("/ws/b/")
    connected, _ = await second.comm.connect()
    assert connected and await second.closed_with() == 4503
    await first.close()


async def test_connection_attempts_past_the_rate_close_with_4503(settings):
    settings.WEBSOCKET_CONNECT_RATE = 2
    for i in range(2):
        c = Client(f"/ws/r{i}/", client=("10.0.0.9", 1))
        assert (await c.connect())[0]
        await c.close()
    third = Client("/ws/r3/", client=("10.0.0.9", 1))
    await third.comm.connect()
    assert await third.closed_with() == 4503
    other_ip = Client("/ws/r4/", client=("10.0.0.10", 1))
    assert (await other_ip.connect())[0]
    await other_ip.close()


async def test_same_client_id_and_user_replaces_the_older_connection(alice, bob):
    old = Client("/ws/tab-1/", token=access_token(alice))
    await old.connect()
    other_user = Client("/ws/tab-1/", token=access_token(bob))
    await other_user.connect()
    new = Client("/ws/tab-1/", token=access_token(alice))
    await new.connect()
    assert await old.closed_with() == 4409
    assert await other_user.nothing()
    assert (await new.request({"type": "ping"}))["type"] == "pong"
    await new.close()
    await other_user.close()


# --- messages -----------------------------------------------------------------


async def test_ping_gets_pong_with_timestamp_and_ref():
    client = Client()
    await client.connect()
    pong = await client.request({"type": "ping", "timestamp": "2026-11-25T12:00:00Z", "ref": "p1"})
    assert pong["type"] == "pong" and pong["timestamp"] == "2026-11-25T12:00:00Z" and pong["ref"] == "p1"
    assert pong["server_time"].endswith("Z")
    await client.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1]", "invalid_json"),
        ('{"type": "subscribe", "channel": 1}', "invalid_message"),
        ('{"type": "fly"}', "unknown_type"),
        ('{"type": "subscribe", "channel": "nope"}', "unknown_channel"),
        ('{"type": "subscribe", "channel": "\\u00fcber"}', "unknown_channel"),
        ('{"type": "subscribe", "channel": "' + "x" * 300 + '"}', "unknown_channel"),
        ('{"type": "subscribe", "channel": "issue:' + "9" * 120 + '"}', "unknown_channel"),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_open(frame, code):
    client = Client()
    await client.connect()
    await client.send_raw(frame)
    error = await client.recv()
    assert error["type"] == "error" and error["code"] == code and error["message"]
    assert (await client.request({"type": "ping"}))["type"] == "pong"
    await client.close()


async def test_binary_frame_gets_invalid_json():
    client = Client()
    await client.connect()
    await client.send_raw(bytes_data=b"\x00\xff")
    assert (await client.recv())["code"] == "invalid_json"
    assert (await client.request({"type": "ping"}))["type"] == "pong"
    await client.close()


async def test_error_echoes_ref():
    client = Client()
    await client.connect()
    error = await client.request({"type": "subscribe", "channel": "issues", "ref": "r2"})
    assert error == {
        "type": "error",
        "code": "forbidden",
        "message": error["message"],
        "channel": "issues",
        "ref": "r2",
    }
    await client.close()


async def test_oversize_message_closes_with_4413(settings):
    settings.WEBSOCKET_MAX_MESSAGE_SIZE = 1000
    client = Client()
    await client.connect()
    await client.send_raw('{"type": "ping", "timestamp": "' + "x" * 1000 + '"}')
    assert await client.closed_with() == 4413


async def test_multibyte_oversize_counts_bytes(settings):
    settings.WEBSOCKET_MAX_MESSAGE_SIZE = 1000
    client = Client()
    await client.connect()
    await client.send_raw('{"type": "ping", "timestamp": "' + "é" * 600 + '"}')
    assert await client.closed_with() == 4413


async def test_flooding_gets_rate_limited_then_4429(settings):
    settings.WEBSOCKET_MESSAGE_RATE = 2
    client = Client()
    await client.connect()
    for _ in range(5):
        await client.send({"type": "ping"})
    replies = [await client.recv() for _ in range(5)]
    assert [r["type"] for r in replies].count("pong") == 4  # the burst is twice the rate
    assert {"type": "error", "code": "rate_limited"}.items() <= replies[-1].items()
    for _ in range(20):
        await client.send({"type": "ping"})
    assert await client.closed_with() == 4429


async def test_rate_strikes_count_within_their_window_only(settings, monkeypatch):
    """4429 is for more than 4 x rate messages dropped within RATE_STRIKE_WINDOW, not over a socket's life."""
    from realtime import handlers

    monkeypatch.setattr(handlers, "RATE_STRIKE_WINDOW", 1.0)
    settings.WEBSOCKET_MESSAGE_RATE = 2  # bursts of 4; closed past 8 dropped in a window
    client = Client()
    await client.connect()

    async def burst(n: int) -> list[str]:
        for _ in range(n):
            await client.send({"type": "ping"})
        return [(await client.recv()).get("code", "pong") for _ in range(n)]

    first = await burst(12)
    assert first.count("rate_limited") >= 6 and "__closed__" not in first, first
    await asyncio.sleep(1.2)  # the window itself is what is tested: a new one starts
    second = await burst(10)
    assert second.count("rate_limited") >= 6 and "__closed__" not in second, second
    assert await client.nothing(0.3)
    await client.close()


async def test_silence_for_twice_the_heartbeat_closes_with_4408(settings):
    settings.WEBSOCKET_HEARTBEAT_INTERVAL = 0.3
    client = Client()
    await client.connect()
    assert client.hello["heartbeat_interval"] == 0.3
    for _ in range(4):  # pings keep it open past 2 x interval
        await asyncio.sleep(0.25)
        assert (await client.request({"type": "ping"}))["type"] == "pong"
    assert await client.closed_with(timeout=3) == 4408


# --- auth message and token expiry --------------------------------------------


async def test_auth_message_upgrades_an_anonymous_connection(alice):
    client = Client()
    await client.connect()
    assert (await client.request({"type": "subscribe", "channel": "issues"}))["code"] == "forbidden"
    reply = await client.request({"type": "auth", "token": access_token(alice), "ref": "a1"})
    assert reply == {"type": "authenticated", "user": {"id": str(alice.pk), "username": "alice"}, "ref": "a1"}
    assert (await client.request({"type": "subscribe", "channel": "issues"}))["type"] == "subscribed"
    await client.close()


async def test_auth_with_another_users_token_closes_4401(alice, bob):
    client = Client(token=access_token(alice))
    await client.connect()
    await client.send({"type": "auth", "token": access_token(bob)})
    assert (await client.recv())["code"] == "token_invalid"
    assert await client.closed_with() == 4401


async def test_token_expiring_while_connected_closes_4401(alice):
    # 3 s, not 1: a JWT's exp is in whole seconds, so a "1 s" token can be dead
    # before a loaded machine finishes the handshake (refused, not expired).
    client = Client(token=short_token(alice, 3))
    await client.connect()
    error = await client.recv(timeout=8)
    assert error["code"] == "token_expired"
    assert await client.closed_with() == 4401


async def test_auth_message_in_time_extends_the_connection(alice):
    client = Client(token=short_token(alice, 1))
    await client.connect()
    assert (await client.request({"type": "auth", "token": access_token(alice)}))["type"] == "authenticated"
    assert await client.nothing(timeout=1.5)
    await client.close()


# --- channels and policy ------------------------------------------------------


async def test_policy_table_for_anonymous_and_users(alice, bob):
    anon = Client("/ws/anon/")
    await anon.connect()
    assert (await anon.request({"type": "subscribe", "channel": "global"}))["type"] == "subscribed"
    for channel in ("issues", "alerts", "presence", f"user:{alice.pk}"):
        reply = await anon.request({"type": "subscribe", "channel": channel})
        assert reply["code"] == "forbidden", channel
    await anon.close()

    client = Client(token=access_token(alice))
    await client.connect()
    for channel in ("global", "issues", "alerts", f"user:{alice.pk}"):
        assert (await client.request({"type": "subscribe", "channel": channel}))["type"] == "subscribed"
    reply = await client.request({"type": "subscribe", "channel": f"user:{bob.pk}"})
    assert reply["code"] == "forbidden" and reply["channel"] == f"user:{bob.pk}"
    await client.close()


async def test_forbidden_subscriber_receives_nothing(alice, bob):
    client = Client(token=access_token(alice))
    await client.connect()
    await client.request({"type": "subscribe", "channel": f"user:{bob.pk}"})
    await apublish(f"user:{bob.pk}", {"type": "notification", "kind": "mention"})
    assert await client.nothing(0.5)
    await client.close()


async def test_object_channels_need_the_object(alice):
    from realtime import registry

    saved = registry.get("issue")
    registry.register_channel("issue", object_id=True, exists=lambda object_id: object_id == "1")
    try:
        client = Client(token=access_token(alice))
        await client.connect()
        assert (await client.request({"type": "subscribe", "channel": "issue:1"}))["type"] == "subscribed"
        missing = await client.request({"type": "subscribe", "channel": "issue:2"})
        assert missing["code"] == "not_found" and missing["channel"] == "issue:2"
        await client.close()
    finally:
        registry._kinds["issue"] = saved


async def test_the_policy_is_replaceable_by_a_setting(settings, alice):
    settings.REALTIME_CHANNEL_POLICY = "tests.realtime.test_consumer.nothing_but_global"
    client = Client(token=access_token(alice))
    await client.connect()
    assert (await client.request({"type": "subscribe", "channel": "issues"}))["code"] == "forbidden"
    await client.close()


def nothing_but_global(user, channel):
    return None if channel.name == "global" else "forbidden"


async def test_too_many_subscriptions(settings, alice):
    settings.WEBSOCKET_MAX_SUBSCRIPTIONS = 2
    client = Client(token=access_token(alice))
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})
    await client.request({"type": "subscribe", "channel": "issues"})
    assert (await client.request({"type": "subscribe", "channel": "issues"}))["type"] == "subscribed"
    reply = await client.request({"type": "subscribe", "channel": "alerts", "ref": "x"})
    assert reply["code"] == "too_many_subscriptions" and reply["ref"] == "x"
    await client.close()


async def test_unsubscribe_stops_delivery_and_always_replies():
    client = Client()
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})
    assert await client.request({"type": "unsubscribe", "channel": "global"}) == {
        "type": "unsubscribed",
        "channel": "global",
    }
    assert (await client.request({"type": "unsubscribe", "channel": "global"}))["type"] == "unsubscribed"
    await apublish("global", {"type": "announcement", "message": "hi"})
    assert await client.nothing(0.5)
    await client.close()


# --- publications, resume and history -----------------------------------------


async def test_publications_carry_the_envelope_and_contiguous_seq():
    client = Client()
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})
    for i in range(3):
        await apublish("global", {"type": "announcement", "message": f"m{i}"})
    got = [await client.recv() for _ in range(3)]
    assert [m["seq"] for m in got] == [1, 2, 3]
    assert all(m["channel"] == "global" and m["ts"].endswith("Z") for m in got)
    assert [m["message"] for m in got] == ["m0", "m1", "m2"]
    await client.close()


async def test_subscribe_with_since_replays_missed_messages_then_live():
    for i in range(5):
        await apublish("global", {"type": "announcement", "message": f"m{i}"})
    client = Client()
    await client.connect()
    reply = await client.request({"type": "subscribe", "channel": "global", "since": 2, "ref": "s"})
    assert reply == {"type": "subscribed", "channel": "global", "seq": 5, "recovered": True, "ref": "s"}
    assert [(await client.recv())["seq"] for _ in range(3)] == [3, 4, 5]
    await apublish("global", {"type": "announcement", "message": "live"})
    assert (await client.recv())["seq"] == 6
    assert await client.nothing()
    await client.close()


async def test_subscribe_without_since_reports_latest_seq_and_replays_nothing():
    await apublish("global", {"type": "announcement", "message": "old"})
    client = Client()
    await client.connect()
    assert (await client.request({"type": "subscribe", "channel": "global"}))["seq"] == 1
    assert await client.nothing()
    await client.close()


async def test_since_older_than_retained_history_is_not_recovered(settings):
    settings.REALTIME_HISTORY_SIZE = 3
    for i in range(6):
        await apublish("global", {"type": "announcement", "message": f"m{i}"})
    client = Client()
    await client.connect()
    reply = await client.request({"type": "subscribe", "channel": "global", "since": 1})
    assert reply["recovered"] is False and reply["seq"] == 6
    assert [(await client.recv())["seq"] for _ in range(3)] == [4, 5, 6]
    await client.close()


async def test_replay_while_publishing_has_no_gap_and_no_repeat():
    for i in range(20):
        await apublish("global", {"type": "announcement", "message": f"m{i}"})
    client = Client()
    await client.connect()

    async def publish_more():
        for i in range(30):
            await apublish("global", {"type": "announcement", "message": f"n{i}"})

    publisher = asyncio.ensure_future(publish_more())
    await client.send({"type": "subscribe", "channel": "global", "since": 0})
    seqs = []
    while len(seqs) < 50:
        msg = await client.recv(timeout=5)
        if msg["type"] == "announcement":
            seqs.append(msg["seq"])
    await publisher
    assert seqs == list(range(1, 51))
    assert await client.nothing()
    await client.close()


async def test_history_message_returns_stored_messages():
    for i in range(4):
        await apublish("global", {"type": "announcement", "message": f"m{i}"})
    client = Client()
    await client.connect()
    reply = await client.request({"type": "history", "channel": "global", "since": 1, "limit": 2, "ref": "h"})
    assert reply["type"] == "history" and reply["channel"] == "global" and reply["recovered"] is True
    assert reply["ref"] == "h" and [m["seq"] for m in reply["messages"]] == [2, 3]
    await client.close()


async def test_history_follows_the_policy_and_the_no_history_setting(settings, alice):
    client = Client()
    await client.connect()
    assert (await client.request({"type": "history", "channel": "issues"}))["code"] == "forbidden"
    settings.REALTIME_NO_HISTORY = ["global"]
    assert (await client.request({"type": "history", "channel": "global"}))["code"] == "history_unavailable"
    await client.close()


def publish_announcements(n: int) -> None:
    for i in range(n):
        publish("global", {"type": "announcement", "message": f"m{i}"})


async def test_batching_sends_several_publications_in_one_frame(settings):
    settings.WEBSOCKET_BATCH_TICK = 0.2
    client = Client("/ws/b/?batch=1")
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})

    await database_sync_to_async(publish_announcements)(3)
    frame = await client.recv()
    assert frame["type"] == "batch" and [m["seq"] for m in frame["messages"]] == [1, 2, 3]
    await client.close()


async def test_simultaneous_first_connections_all_get_recorded(alice, monkeypatch):
    """After a restart every client reconnects at once: none may race the hub's start."""
    import time as _time

    from realtime import instances
    from realtime.models import Connection

    real_register = instances.register_server

    def slow_register(*args):  # a slow database at start-up widens the race
        _time.sleep(0.5)
        real_register(*args)

    monkeypatch.setattr(instances, "register_server", slow_register)

    clients = [Client(f"/ws/c{i}/", token=access_token(alice)) for i in range(5)]
    results = await asyncio.gather(*(c.connect() for c in clients))
    assert all(connected for connected, _ in results)
    assert all(c.hello["type"] == "connection" for c in clients)
    assert await database_sync_to_async(Connection.objects.count)() == 5
    for c in clients:
        await c.close()


async def test_a_batching_client_that_falls_behind_is_closed_with_4500(settings):
    settings.WEBSOCKET_BATCH_TICK = 5.0  # nothing is flushed during the test
    settings.WEBSOCKET_SEND_QUEUE_LIMIT = 3
    client = Client("/ws/slow/?batch=1")
    await client.connect()
    await client.request({"type": "subscribe", "channel": "global"})

    await database_sync_to_async(publish_announcements)(5)
    assert await client.closed_with() == 4500
