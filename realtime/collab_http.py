"""Channel activity and signals over HTTP, for a client on SSE (docs/protocol.md sections 10, 11 and 13).

A stream only receives, so what a socket would send goes here, naming the
stream by the ``connection_id`` of its ``connection`` event:

- ``POST /api/realtime/channels/<channel>/activity/`` ``{"connection_id", "activity"}``:
  the ``presence`` message with ``channel``; ``presence_ack`` (200), and the
  members' diff goes out as after a socket's;
- ``POST /api/realtime/channels/<channel>/signal/`` ``{"connection_id", "event", "data"}``:
  the ``signal`` message; 202, relayed to the channel's other subscribers (not
  back to that stream), never stored.

The frame is checked by the socket's own parser, so both transports accept
and refuse the same; the connection must be the caller's and hold the channel
(403 ``forbidden`` otherwise, as on a socket), and both count against its
message rate (429 ``rate_limited`` past it). The request may land on any
server process: it reaches this process's sockets through its hub and the
others through the layer (Redis); without Redis, a diff reaches other
processes at their next poll, and a signal only this process's subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import channel_presence, conf, fanout, protocol
from .channel_tracker import get_tracker
from .models import ChannelMember, Connection
from .protocol import ProtocolError, encode
from .ratelimit import KeyedTokenBuckets

logger = logging.getLogger(__name__)

# The stream's message rate, as a socket's (WEBSOCKET_MESSAGE_RATE, bursts of twice
# it), counted per connection in this process; the views run on several threads.
_rates: list = [None, None]  # [rate, KeyedTokenBuckets]
_rates_lock = threading.Lock()


def _allowed(connection_id: str) -> bool:
    rate = float(conf.get("WEBSOCKET_MESSAGE_RATE"))
    with _rates_lock:
        if _rates[0] != rate:
            _rates[:] = [rate, KeyedTokenBuckets(rate, 2 * rate)]
        return _rates[1].take(connection_id, time.monotonic())


def _error(exc: ProtocolError) -> Response:
    code = {protocol.E_FORBIDDEN: 403, protocol.E_RATE_LIMITED: 429}.get(exc.code, status.HTTP_400_BAD_REQUEST)
    return Response(protocol.error(exc.code, exc.message, channel=exc.channel), status=code)


def _frame(request, kind: str, channel: str) -> tuple[protocol.ClientMessage, str]:
    """The body as the socket's frame of ``kind`` on ``channel``, and its ``connection_id``."""
    body = request.data if isinstance(request.data, dict) else None
    if body is None:
        raise ProtocolError(protocol.E_INVALID_MESSAGE, "body must be a JSON object")
    fields = {k: v for k, v in body.items() if k not in ("connection_id", "ref")}
    msg = protocol.parse_frame(encode({**fields, "type": kind, "channel": channel}))
    connection_id = body.get("connection_id")
    if not isinstance(connection_id, str) or not connection_id:
        raise ProtocolError(protocol.E_INVALID_MESSAGE, "connection_id is required: the stream's connection")
    if not _allowed(connection_id):
        raise ProtocolError(protocol.E_RATE_LIMITED, "too many messages; this one was dropped")
    return msg, connection_id


def _holds(user_id, connection_id: str, channel: str) -> bool:
    """Is ``connection_id`` a live connection of this user that holds ``channel``?"""
    subscriptions = (
        Connection.objects.filter(id=connection_id, user_id=user_id).values_list("subscriptions", flat=True).first()
    )
    if subscriptions is None:
        return False
    # A channel held with channel presence may be in the member row only (channel_presence.held_counts).
    return (
        channel in subscriptions
        or ChannelMember.objects.filter(connection_id=connection_id, channel=channel, left_at__isnull=True).exists()
    )


def _on_hub(make_coroutine) -> bool:
    """Run ``make_coroutine(hub)`` on this process's hub loop, if it serves connections; True if it did."""
    hub = fanout.local()
    if hub is None or hub.loop is None or hub.loop.is_closed():
        return False
    asyncio.run_coroutine_threadsafe(make_coroutine(hub), hub.loop)
    return True


class ChannelActivityView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        description='`{"connection_id": ..., "activity": ...}`: the `presence` message with `channel` of '
        "docs/protocol.md section 10, for a stream (section 13). `presence_ack`, else a section 5 `error`.",
    )
    def post(self, request, channel: str):
        try:
            msg, connection_id = _frame(request, "presence", channel)
            name = protocol.parse_channel(channel).name
            if not channel_presence.set_activity(name, request.user.pk, connection_id, msg.activity):
                raise ProtocolError(
                    protocol.E_INVALID_MESSAGE, "this connection holds no presence on this channel", channel=name
                )
        except ProtocolError as exc:
            return _error(exc)
        if not _on_hub(lambda hub: get_tracker(hub).changed(name)):
            fanout.send_from_thread({"type": fanout.CHANNEL_PRESENCE, "origin": "", "channel": name})
        return Response({"type": "presence_ack", "channel": name, "activity": msg.activity or "viewing"})


class ChannelSignalView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={202: OpenApiTypes.OBJECT},
        description='`{"connection_id": ..., "event": ..., "data": {...}}`: the `signal` message of '
        "docs/protocol.md section 11, for a stream (section 13). 202, else a section 5 `error`.",
    )
    def post(self, request, channel: str):
        try:
            msg, connection_id = _frame(request, "signal", channel)
            name = protocol.parse_channel(channel).name
            if not channel_presence.has_signals(protocol.parse_channel(name).kind) or not _holds(
                request.user.pk, connection_id, name
            ):
                raise ProtocolError(
                    protocol.E_FORBIDDEN, "signals go only to a channel this connection holds", channel=name
                )
        except ProtocolError as exc:
            return _error(exc)
        text = encode(
            {"type": "signal", "channel": name, "event": msg.event, "user_id": str(request.user.pk), "data": msg.data}
        )
        hub = fanout.local()
        _on_hub(lambda hub: get_tracker(hub).relay_local(name, text, connection_id))
        fanout.send_from_thread(
            {
                "type": fanout.SIGNAL,
                "origin": hub.server_id if hub is not None else "",
                "channel": name,
                "text": text,
                "sender": connection_id,
            }
        )
        return Response({}, status=status.HTTP_202_ACCEPTED)
