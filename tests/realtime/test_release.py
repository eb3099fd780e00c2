"""A handler's failure ends its connection with 1011 and releases everything it held."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

from realtime.hub import get_hub
from realtime.models import Connection, Presence
from tests.conftest import access_token
from tests.realtime.helpers import Client

pytestmark = pytest.mark.django_db(transaction=True)


async def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def short_busy_timeout(monkeypatch):
    """SQLite's busy timeout down from 20 s to 0.3 s, so "database is locked" comes quickly."""
    if connection.vendor != "sqlite":
        pytest.skip("the lock is SQLite's")
    monkeypatch.setitem(settings.DATABASES["default"]["OPTIONS"], "timeout", 0.3)

    async def reconnect():
        await database_sync_to_async(lambda: connection.close())()

    return reconnect


async def test_database_locked_during_presence_closes_1011_and_releases(alice, short_busy_timeout, settings):
    settings.WEBSOCKET_PRESENCE_GRACE = 0.1
    await short_busy_timeout()
    client = Client(token=access_token(alice))
    assert (await client.connect())[0]
    hub = get_hub()
    assert len(hub.connections) == 1
    path = await database_sync_to_async(lambda: connection.settings_dict["NAME"])()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        await client.send({"type": "presence", "status": "away"})
        assert await client.closed_with(timeout=5) == 1011
        assert hub.connections == {} and not hub.subscribers
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    async def released():
        rows = await database_sync_to_async(Connection.objects.count)()
        status = await database_sync_to_async(lambda: Presence.objects.get(user=alice).status)()
        return rows == 0 and status == "offline"

    await wait_for(released)
