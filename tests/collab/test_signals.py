"""Signals through the consumer (docs/protocol.md section 11): relayed, never stored, never echoed."""

import pytest
from channels.db import database_sync_to_async

from issues.models import Issue
from realtime.models import Message
from tests.collab.test_channel_presence import connect

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def channel(db):
    return f"issue:{Issue.objects.create(title='TypeError in checkout').pk}"


async def subscribed(user, channel, client_id):
    client = await connect(user, client_id)
    assert (await client.request({"type": "subscribe", "channel": channel}))["type"] == "subscribed"
    return client


async def test_signal_reaches_the_other_subscribers_only_and_is_never_stored(alice, bob, staff, channel):
    a = await subscribed(alice, channel, "tab-a")
    b = await subscribed(bob, channel, "tab-b")
    a2 = await subscribed(alice, channel, "tab-a2")  # the sender's other tab is another subscriber
    other = await subscribed(staff, "issues", "tab-s")  # another channel: nothing
    stored = await database_sync_to_async(Message.objects.count)()
    await a.send({"type": "signal", "channel": channel, "event": "typing", "data": {"field": "comment"}})
    expected = {"type": "signal", "channel": channel, "event": "typing", "user_id": str(alice.pk),
                "data": {"field": "comment"}}  # fmt: skip
    assert await b.recv() == expected
    assert await a2.recv() == expected
    assert await a.nothing(0.3)  # never echoed, and no reply
    assert await other.nothing(0.1)
    # data defaults to {}
    await b.send({"type": "signal", "channel": channel, "event": "stopped_typing"})
    assert (await a.recv())["data"] == {} and (await a2.recv())["event"] == "stopped_typing"
    assert await database_sync_to_async(Message.objects.count)() == stored
    # Not in history either.
    history = await b.request({"type": "history", "channel": channel, "since": 0})
    assert history["type"] == "history" and all(m["type"] != "signal" for m in history["messages"])
    for client in (a, b, a2, other):
        await client.close()


async def test_signal_from_anonymous_or_to_a_channel_not_held_is_forbidden(alice, channel):
    anonymous = await connect(None, "anon")
    assert (await anonymous.request({"type": "subscribe", "channel": "global"}))["type"] == "subscribed"
    err = await anonymous.request({"type": "signal", "channel": channel, "event": "typing", "ref": "r"})
    assert err["type"] == "error" and err["code"] == "forbidden" and err["ref"] == "r" and err["channel"] == channel
    err = await anonymous.request({"type": "signal", "channel": "global", "event": "typing"})
    assert err["code"] == "forbidden"
    a = await connect(alice)
    err = await a.request({"type": "signal", "channel": channel, "event": "typing"})
    assert err["code"] == "forbidden"  # not held
    assert (await a.request({"type": "subscribe", "channel": "issues"}))["type"] == "subscribed"
    err = await a.request({"type": "signal", "channel": "issues", "event": "typing"})
    assert err["code"] == "forbidden"  # a kind without signals
    err = await a.request({"type": "signal", "channel": "nope:1", "event": "typing"})
    assert err["code"] == "unknown_channel"
    await anonymous.close()
    await a.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"event": ""},
        {"event": "Typing"},
        {"event": "x" * 33},
        {"event": "typ-ing"},
        {"event": 7},
        {"event": "typing", "data": []},
        {"event": "typing", "data": "x"},
        {"event": "typing", "data": {"x": "y" * 1020}},
        {"event": "typing", "channel": 5},
    ],
)
async def test_invalid_signals_are_invalid_message(alice, bob, channel, frame):
    a = await subscribed(alice, channel, "tab-a")
    b = await subscribed(bob, channel, "tab-b")
    err = await a.request({"type": "signal", "channel": channel, **frame})
    assert err["type"] == "error" and err["code"] == "invalid_message", err
    assert await b.nothing(0.2)
    await a.send({"type": "signal", "channel": channel, "event": "x" * 32, "data": {"k": "v" * 1000}})
    assert (await b.recv())["event"] == "x" * 32  # the limits themselves pass
    await a.close()
    await b.close()


async def test_signals_count_against_the_message_rate(alice, bob, channel, settings):
    settings.WEBSOCKET_MESSAGE_RATE = 2
    a = await subscribed(alice, channel, "tab-a")
    b = await subscribed(bob, channel, "tab-b")
    for _ in range(8):
        await a.send({"type": "signal", "channel": channel, "event": "typing"})
    errors = []
    while not await a.nothing(0.3):
        errors.append(await a.recv())
    assert errors and {e["code"] for e in errors} == {"rate_limited"}
    relayed = 0
    while not await b.nothing(0.3):
        assert (await b.recv())["type"] == "signal"
        relayed += 1
    assert 1 <= relayed < 8 and relayed + len(errors) == 8
    await a.close()
    await b.close()
