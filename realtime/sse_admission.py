"""Whether an SSE request opens a stream: its checks, in the WebSocket handshake's order.

``admit`` reads the request (method, origin, ``client_id``, ``channels``, the
hub's capacity, the token or session, ``since`` / ``Last-Event-ID``, each
channel's ``policy.check``, then ``presence``) and returns what the stream needs, or raises
``Refused``: an HTTP error with a section 5 error body, nothing recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from . import channel_presence, conf, events, policy, protocol
from .auth import AuthFailed, authenticate, session_user
from .origins import origin_allowed
from .protocol import ProtocolError, encode

if TYPE_CHECKING:
    from .hub import Hub

STATUS_OF = {
    protocol.E_FORBIDDEN: 403,
    protocol.E_NOT_FOUND: 404,
    protocol.E_TOKEN_INVALID: 401,
    protocol.E_TOKEN_EXPIRED: 401,
}
E_UNAVAILABLE = "unavailable"

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The request is answered with an HTTP error and a section 5 error body; nothing is recorded."""

    def __init__(self, status: int, code: str, message: str, channel: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.channel = status, code, message, channel


def refused(exc: ProtocolError) -> Refused:
    return Refused(STATUS_OF.get(exc.code, 400), exc.code, exc.message, exc.channel)


@dataclass
class Admission:
    """An admitted request: who it is and what it reads from where."""

    client_id: str
    ip: str
    headers: dict[str, str]
    channels: list[str] = field(default_factory=list)
    since: dict[str, int] = field(default_factory=dict)
    user: Any = None
    user_id: str | None = None
    token_session: str | None = None  # the sign-in its token came from (revocation.py)
    expires_at: float | None = None  # the token's expiry (a Unix timestamp); None without a token
    presence: list[str] = field(default_factory=list)  # channels it joins the presence of (section 10)


async def admit(scope: dict, hub: Hub, connection_id: str) -> Admission:
    """Every check of the request; raises Refused."""
    if scope.get("method") != "GET":
        raise Refused(405, protocol.E_INVALID_MESSAGE, "use GET")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    if not origin_allowed(headers.get("origin")):
        logger.info("refused SSE stream from origin %r", headers.get("origin"))
        raise Refused(403, protocol.E_FORBIDDEN, "origin not allowed")
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    client_id = query.get("client_id", [""])[0] or f"sse-{connection_id[:16]}"
    if not protocol.valid_client_id(client_id):
        raise Refused(400, protocol.E_INVALID_MESSAGE, "client_id: 1-64 characters of A-Z a-z 0-9 _ . -")
    names = [n for n in ",".join(query.get("channels", [])).split(",") if n.strip()]
    if not names:
        raise Refused(400, protocol.E_INVALID_MESSAGE, "channels is required: ?channels=issues,issue:123")

    await hub.ensure_started(handle_signals="server" in scope)
    ip = (scope.get("client") or ("", 0))[0] or ""
    if hub.stopping or not hub.allow_connect_attempt(ip) or hub.at_capacity():
        raise Refused(503, E_UNAVAILABLE, "server at capacity or restarting; try again later")

    admitted = Admission(client_id=client_id, ip=ip, headers=headers)
    await _authenticate(admitted, query.get("token", [""])[0], headers)
    try:
        since = events.parse_position(",".join(query.get("since", [])))
        since.update(events.parse_position(headers.get("last-event-id", "")))
    except ProtocolError as exc:
        raise refused(exc) from None
    for name in names:
        try:
            channel = (await database_sync_to_async(policy.check)(admitted.user, name.strip())).name
        except ProtocolError as exc:
            raise refused(exc) from None
        if channel not in admitted.channels:
            admitted.channels.append(channel)
    if len(admitted.channels) > int(conf.get("WEBSOCKET_MAX_SUBSCRIPTIONS")):
        raise Refused(400, protocol.E_TOO_MANY_SUBSCRIPTIONS, "too many channels")
    admitted.since = {ch: since[ch] for ch in admitted.channels if ch in since}
    admitted.presence = _presence_channels(query, admitted)
    return admitted


def _presence_channels(query: dict, admitted: Admission) -> list[str]:
    """``presence=issue:123``: channels of the stream whose presence it joins, checked as a subscribe's."""
    out: list[str] = []
    for name in (n.strip() for n in ",".join(query.get("presence", [])).split(",") if n.strip()):
        try:
            channel = protocol.parse_channel(name)
        except ProtocolError as exc:
            raise refused(exc) from None
        if channel.name not in admitted.channels:
            raise Refused(400, protocol.E_INVALID_MESSAGE, "presence names a channel not in channels", channel.name)
        if not channel_presence.has_presence(channel.kind):
            raise Refused(400, protocol.E_INVALID_MESSAGE, "this channel has no channel presence", channel.name)
        if admitted.user_id is None:
            raise Refused(403, protocol.E_FORBIDDEN, "sign in to join a channel's presence")
        if channel.name not in out:
            out.append(channel.name)
    return out


async def _authenticate(admitted: Admission, token: str, headers: dict[str, str]) -> None:
    """``?token=``, else ``Authorization: Bearer``, else the session cookie; a bad token is 401."""
    scheme, _, bearer = headers.get("authorization", "").partition(" ")
    token = token or (bearer.strip() if scheme.lower() == "bearer" else "")
    if token:
        try:
            auth = await database_sync_to_async(authenticate)(token)
        except AuthFailed as exc:
            raise Refused(401, exc.code, exc.message) from None
        admitted.user, admitted.user_id = auth.user, str(auth.user.pk)
        admitted.token_session = auth.session
        admitted.expires_at = auth.expires_at
    elif "cookie" in headers:
        user = await database_sync_to_async(session_user)(headers["cookie"])
        if user is not None:
            admitted.user, admitted.user_id = user, str(user.pk)


async def refuse(send: Any, exc: Refused) -> None:
    """Answer a refused request: its status and a section 5 ``error`` body."""
    body = encode(protocol.error(exc.code, exc.message, channel=exc.channel)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status == 503:
        headers.append((b"retry-after", b"2"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
