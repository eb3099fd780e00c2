"""A handshake's database work, gathered: token checks, ``Connection`` rows, presence.

A reconnect storm (every client of a restarted server at once) would look up
one user, write one row, one presence row and one subscriptions column per
connection, each its own trip to the consumers' one database thread. These are
the calls of ``realtime.auth`` and ``realtime.connections`` for async callers,
with the calls that arrive while that thread is busy made together
(``realtime.coalesce``): one SELECT of the users, one INSERT of the rows, one
UPDATE of their users' presence, one of their subscriptions. What each caller
gets back (or raises), and what presence shows, is what its own call would
have given.
"""

from __future__ import annotations

from typing import Any

from . import auth, connections
from .coalesce import Coalescer

# Opens and closes wait their turn first (realtime.coalesce): a storm's handshakes
# queue their token checks on the database thread just before. The subscriptions
# column is written where a lone call would be: readers of it (the stats API)
# expect it right after the subscribe's other work.
_authenticated = Coalescer(lambda _key, tokens: auth.authenticate_many(tokens), wait_turn=True)
_opened = Coalescer(lambda _key, rows: connections.connections_opened(rows), wait_turn=True)
_closed = Coalescer(lambda _key, items: connections.connections_closed(items), wait_turn=True)
_subscriptions = Coalescer(lambda _key, items: connections.subscriptions_updated(items))


async def authenticate(token: str) -> auth.Authenticated:
    """``auth.authenticate``: raises ``auth.AuthFailed``."""
    return await _authenticated(None, token)


async def connection_opened(
    *, connection_id: str, client_id: str, user_id, server_id: str, ip: str = "", user_agent: str = ""
) -> None:
    row = {
        "connection_id": connection_id,
        "client_id": client_id,
        "user_id": user_id,
        "server_id": server_id,
        "ip": ip,
        "user_agent": user_agent,
    }
    await _opened(None, row)


async def connection_closed(connection_id: str, user_id: Any) -> bool:
    """True when its user has none left (the grace period starts)."""
    return await _closed(None, (connection_id, user_id))


async def update_subscriptions(connection_id: str, channels: list[str]) -> None:
    await _subscriptions(None, (connection_id, channels))
