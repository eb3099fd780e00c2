"""A reconnect storm through the consumer: many clients at once share one history read,
and their connection and presence rows are written in batches, with presence as one at a time gives."""

import asyncio
import json
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async

from realtime.models import Connection, Message, Presence
from realtime.publisher import publish
from tests.conftest import access_token
from tests.realtime.helpers import Client, DatabaseThreadQueries

pytestmark = pytest.mark.django_db(transaction=True)

apublish = database_sync_to_async(publish)


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def connect_all(clients: list[Client]) -> None:
    results = await asyncio.gather(*(c.connect() for c in clients))
    assert all(connected for connected, _ in results)


@database_sync_to_async
def rows_and_presence() -> tuple[int, dict[str, str]]:
    statuses = {str(user_id): status for user_id, status in Presence.objects.values_list("user_id", "status")}
    return Connection.objects.count(), statuses


@database_sync_to_async
def presence_statuses(user) -> list[str]:
    payloads = Message.objects.filter(channel="presence").values_list("payload", flat=True)
    return [m["status"] for m in map(json.loads, payloads) if m["user_id"] == str(user.pk)]


async def test_concurrent_subscribes_with_since_do_one_history_read():
    for i in range(10):
        await apublish("global", {"type": "announcement", "message": f"m{i}"})
    clients = [Client(f"/ws/tab-{n}/") for n in range(20)]
    await connect_all(clients)
    async with DatabaseThreadQueries() as queries:
        for n, client in enumerate(clients):
            await client.send({"type": "subscribe", "channel": "global", "since": n % 10})
        replies = [await client.recv() for client in clients]
        replays = [[(await client.recv())["seq"] for _ in range(10 - n % 10)] for n, client in enumerate(clients)]
    assert all(r["type"] == "subscribed" and r["seq"] == 10 and r["recovered"] for r in replies)
    assert replays == [list(range(n % 10 + 1, 11)) for n in range(20)]
    assert len(queries.on("realtime_message")) == 1
    assert len(queries.on("realtime_channelsequence")) == 1
    # Live publications go on as before, once each.
    await apublish("global", {"type": "announcement", "message": "live"})
    assert [(await client.recv())["seq"] for client in clients] == [11] * 20
    assert all([await client.nothing(0.05) for client in clients])
    for client in clients:
        await client.close()


async def test_a_storm_of_signed_in_clients_writes_rows_and_presence_in_batches(alice, bob):
    tokens = [access_token(alice), access_token(bob)]
    clients = [Client(f"/ws/tab-{n}/", token=tokens[n % 2]) for n in range(20)]
    async with DatabaseThreadQueries() as queries:
        await connect_all(clients)
        for client in clients:
            await client.send({"type": "subscribe", "channel": "global", "since": 0})
        assert [(await client.recv())["type"] for client in clients] == ["subscribed"] * 20

        async def subscriptions_written():
            values = await database_sync_to_async(lambda: list(Connection.objects.values_list("subscriptions")))()
            return values == [(["global"],)] * 20

        await wait_for(subscriptions_written)
    inserts = [sql for sql in queries.on("realtime_connection") if sql.startswith("INSERT")]
    updates = [sql for sql in queries.on("realtime_connection") if sql.startswith("UPDATE")]
    assert len(inserts) == 1  # 20 rows
    # The subscriptions columns are gathered only while the database thread is busy (realtime/gathered.py).
    assert len(updates) < 20
    assert len(queries.on("auth_user")) == 1  # 20 token checks
    assert len([sql for sql in queries.on("realtime_presence") if sql.startswith("UPDATE")]) <= 3
    count, statuses = await rows_and_presence()
    assert count == 20 and statuses == {str(alice.pk): "online", str(bob.pk): "online"}
    assert await presence_statuses(alice) == ["online"]  # online once, for 10 connections
    for client in clients:
        await client.close()


async def test_batched_closes_release_every_row_and_start_one_grace_per_user(settings, alice, bob):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.3
    tokens = [access_token(alice), access_token(bob)]
    clients = [Client(f"/ws/tab-{n}/", token=tokens[n % 2]) for n in range(10)]
    await connect_all(clients)
    stays = Client("/ws/stays/", token=access_token(bob))
    assert (await stays.connect())[0]
    async with DatabaseThreadQueries() as queries:
        await asyncio.gather(*(c.close() for c in clients))

    async def released():
        count, statuses = await rows_and_presence()
        return count == 1 and statuses[str(alice.pk)] == "offline"

    await wait_for(released)
    assert len([sql for sql in queries.on("realtime_connection") if sql.startswith("DELETE")]) == 1
    # Bob kept a connection: online throughout; Alice went offline once, after the grace.
    _, statuses = await rows_and_presence()
    assert statuses[str(bob.pk)] == "online"
    assert await presence_statuses(alice) == ["online", "offline"]
    assert await presence_statuses(bob) == ["online"]
    await stays.close()


async def test_a_reload_storm_within_the_grace_never_shows_offline(settings, alice):
    # Long enough for ten handshakes on a busy machine (they took up to 1.1 s here).
    settings.WEBSOCKET_PRESENCE_GRACE = 3
    clients = [Client(f"/ws/tab-{n}/", token=access_token(alice)) for n in range(10)]
    await connect_all(clients)
    await asyncio.gather(*(c.close() for c in clients))
    closed = time.monotonic()
    clients = [Client(f"/ws/tab-{n}/", token=access_token(alice)) for n in range(10)]
    await connect_all(clients)

    async def rows_back():
        return (await rows_and_presence())[0] == 10

    await wait_for(rows_back)
    assert await clients[0].nothing(max(0.1, 3.3 - (time.monotonic() - closed)))  # past the grace
    count, statuses = await rows_and_presence()
    assert count == 10 and statuses == {str(alice.pk): "online"}
    assert await presence_statuses(alice) == ["online"]
    row = await database_sync_to_async(Presence.objects.get)(user=alice)
    assert row.offline_pending_since is None
    for client in clients:
        await client.close()


# --- the batch functions themselves ---------------------------------------------------


def test_authenticate_many_answers_each_token_as_authenticate_does(alice, bob, make_user):
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    from realtime.auth import AuthFailed, authenticate, authenticate_many
    from realtime.tokens import SessionTokenObtainPairSerializer

    carol = make_user("carol")
    carol_token = access_token(carol)
    carol.is_active = False
    carol.save()
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=timedelta(seconds=-1))
    signed_in = SessionTokenObtainPairSerializer.get_token(bob)
    revoked_session = SessionTokenObtainPairSerializer.get_token(bob)
    revoked_session.blacklist()
    tokens = [
        access_token(alice),
        access_token(alice),
        str(signed_in.access_token),
        str(revoked_session.access_token),
        carol_token,
        str(expired),
        str(RefreshToken.for_user(alice)),  # a refresh token opens no socket
        "not a token",
    ]

    def one(token):
        try:
            return authenticate(token)
        except AuthFailed as exc:
            return exc

    def same(a, b) -> bool:
        if isinstance(a, AuthFailed):
            return isinstance(b, AuthFailed) and (a.code, a.message) == (b.code, b.message)
        return (a.user.pk, a.expires_at, a.session) == (b.user.pk, b.expires_at, b.session)

    many = authenticate_many(tokens)
    assert all(same(a, b) for a, b in zip(many, [one(t) for t in tokens], strict=True))
    assert [type(a).__name__ for a in many] == ["Authenticated"] * 3 + ["AuthFailed"] * 5
    assert many[0].user is not many[1].user  # each caller its own instance


def test_connections_opened_with_a_bad_row_fails_that_row_only(alice):
    from django.db import DatabaseError

    from realtime import connections, instances

    instances.register_server("s1", "host", 1)
    good = {"connection_id": "c1", "client_id": "t", "user_id": str(alice.pk), "server_id": "s1"}
    bad = {"connection_id": "c2", "client_id": "t", "user_id": None, "server_id": "no-such-server"}
    results = connections.connections_opened([good, bad])
    assert results[0] is None and isinstance(results[1], DatabaseError)
    assert list(Connection.objects.values_list("id", flat=True)) == ["c1"]
    assert Presence.objects.get(user=alice).status == "online"


def test_connections_closed_says_last_once_per_user_and_starts_the_grace(alice, bob):
    from realtime import connections, instances

    instances.register_server("s1", "host", 1)
    rows = [
        {"connection_id": f"c{n}", "client_id": "t", "user_id": str(user.pk), "server_id": "s1"}
        for n, user in enumerate([alice, alice, bob, bob])
    ] + [{"connection_id": "c4", "client_id": "t", "user_id": None, "server_id": "s1"}]
    assert connections.connections_opened(rows) == [None] * 5
    # Alice's two and one of Bob's: Alice has none left (said once), Bob still has one.
    items = [("c0", str(alice.pk)), ("c1", str(alice.pk)), ("c2", str(bob.pk)), ("c4", None)]
    assert connections.connections_closed(items) == [True, False, False, False]
    assert list(Connection.objects.values_list("id", flat=True)) == ["c3"]
    assert Presence.objects.get(user=alice).offline_pending_since is not None
    assert Presence.objects.get(user=bob).offline_pending_since is None


def test_subscriptions_updated_writes_the_last_of_each_connection(alice):
    from realtime import connections, instances

    instances.register_server("s1", "host", 1)
    rows = [{"connection_id": f"c{n}", "client_id": "t", "user_id": None, "server_id": "s1"} for n in range(3)]
    connections.connections_opened(rows)
    connections.subscriptions_updated([("c0", ["a"]), ("c1", ["b"]), ("c0", ["a", "c"])])
    assert dict(Connection.objects.values_list("id", "subscriptions")) == {"c0": ["a", "c"], "c1": ["b"], "c2": []}
