"""HTTP side of the real-time layer: history, presence, broadcast, notify, stats."""

from __future__ import annotations

import asyncio
import gc

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import channel_presence, conf, connections, instances, policy, presence, protocol
from .hub import running_hub
from .ids import parse_id
from .lean import LeanPost
from .models import Connection
from .permissions import CanPublish, IsStaff
from .publisher import history, publish
from .serializers import NotifySerializer, PresenceSerializer, PresenceStatusSerializer, PublishSerializer
from .sizes import message_too_large
from .throttles import PublishThrottle


def _checked_channel(request, channel: str):
    """The channel policy's answer as HTTP: 404 unknown or missing, 401 anonymous, 403 forbidden."""
    user = request.user if request.user.is_authenticated else None
    try:
        return policy.check(user, channel)
    except protocol.ProtocolError as exc:
        if exc.code in (protocol.E_NOT_FOUND, protocol.E_UNKNOWN_CHANNEL):
            raise NotFound(exc.message if exc.code == protocol.E_NOT_FOUND else "unknown channel") from None
        if user is None:
            raise NotAuthenticated("authentication required") from None
        raise PermissionDenied(exc.message) from None


class ChannelPresenceView(APIView):
    """Who is on one channel (section 10), under the same policy as the socket."""

    permission_classes = [AllowAny]  # the channel policy decides, as on the socket

    @extend_schema(
        responses=OpenApiTypes.OBJECT,
        description='`{"channel": ..., "count": N, "members": [...]}` of docs/protocol.md section 10.',
    )
    def get(self, request, channel: str):
        name = _checked_channel(request, channel).name
        if not channel_presence.has_presence(protocol.parse_channel(name).kind):
            raise NotFound("this channel has no channel presence")
        # Any reader sweeps what a dead server or an ended grace left, as the presence API prunes.
        instances.prune_dead_servers()
        channel_presence.sweep()
        members = channel_presence.member_list(name)
        return Response({"channel": name, "count": len(members), "members": members})


class ChannelPresenceCountsView(APIView):
    """How many members each channel of one kind has: the issue list's "2 here" (section 10).

    Only channels the caller may subscribe to are counted (the same policy as
    the socket), so the answer never reveals an object the caller cannot see.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        # Its own id: the generated one collides with channels/<channel>/presence/'s (a W001 in check --deploy).
        operation_id="realtime_channels_presence_counts",
        parameters=[OpenApiParameter("kind", str, required=True, description="a channel kind with presence")],
        responses=OpenApiTypes.OBJECT,
        description='`{"kind": "issue", "counts": {"issue:12": 2}}`: channels with no member are left out.',
    )
    def get(self, request):
        kind = request.query_params.get("kind", "")
        if not channel_presence.has_presence(kind):
            raise ValidationError({"kind": "a channel kind with channel presence"})
        channel_presence.sweep()
        counts = {}
        for channel, count in channel_presence.member_counts(kind).items():
            try:
                policy.check(request.user, channel)
            except protocol.ProtocolError:
                continue
            counts[channel] = count
        return Response({"kind": kind, "counts": counts})


class HistoryView(APIView):
    """Stored messages of one channel, under the same policy as the socket."""

    permission_classes = [AllowAny]  # the channel policy decides, as on the socket

    @extend_schema(
        parameters=[
            OpenApiParameter("since", int, description="return messages with seq greater than this"),
            OpenApiParameter("limit", int, description="at most this many (1-1000)"),
        ],
        responses=OpenApiTypes.OBJECT,
        description="The `history` message of docs/protocol.md section 3 for one channel.",
    )
    def get(self, request, channel: str):
        user = request.user if request.user.is_authenticated else None
        try:
            policy.check_history(policy.check(user, channel))
        except protocol.ProtocolError as exc:
            if exc.code == protocol.E_HISTORY_UNAVAILABLE:
                raise NotFound(exc.message) from None
            if exc.code == protocol.E_NOT_FOUND:
                raise NotFound(exc.message) from None
            if exc.code == protocol.E_UNKNOWN_CHANNEL:
                raise NotFound("unknown channel") from None
            if user is None:
                return Response({"detail": "authentication required"}, status=status.HTTP_401_UNAUTHORIZED)
            raise PermissionDenied(exc.message) from None
        raw_since = request.query_params.get("since", "0")
        since = 0 if raw_since == "0" else parse_id(raw_since)
        if since is None:
            raise ValidationError({"since": "a seq: 0 or a positive integer, decimal, without leading zeros"})
        raw_limit = request.query_params.get("limit")
        limit = protocol.MAX_HISTORY_LIMIT if raw_limit is None else parse_id(raw_limit)
        if limit is None:
            raise ValidationError({"limit": "a positive integer, decimal, without leading zeros"})
        rows, recovered, _ = history(channel, since, min(limit, protocol.MAX_HISTORY_LIMIT))
        body = protocol.history_frame(channel, [t for _, t in rows], recovered, None)
        return HttpResponse(body, content_type="application/json")


class PresenceView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=PresenceSerializer(many=True))
    def get(self, request):
        # Any reader prunes what a dead server left, so the answer is never stale.
        instances.prune_dead_servers()
        return Response(PresenceSerializer(presence.presence_list(), many=True).data)

    @extend_schema(
        request=PresenceStatusSerializer,
        responses={200: OpenApiTypes.OBJECT},
        description="The `presence` message of docs/protocol.md section 3 over HTTP, for clients on SSE: "
        "`presence_ack` on success, a section 5 `error` (400) otherwise.",
    )
    def post(self, request):
        # The socket's own parser, so both transports accept and refuse exactly the same.
        body = request.data if isinstance(request.data, dict) else None
        try:
            if body is None:
                raise protocol.ProtocolError(protocol.E_INVALID_MESSAGE, "body must be a JSON object")
            msg = protocol.parse_frame(protocol.encode({**body, "type": "presence"}))
        except protocol.ProtocolError as exc:
            return Response(protocol.error(exc.code, exc.message), status=status.HTTP_400_BAD_REQUEST)
        presence.set_status(str(request.user.pk), msg.status, msg.activity)
        return Response({"type": "presence_ack", "status": msg.status, "activity": msg.activity})


class BroadcastView(LeanPost):
    """Publish on any channel; the plain valid case is served by ``LeanPost`` (realtime/lean.py)."""

    permission_classes = [CanPublish]
    throttle_classes = [PublishThrottle]
    throttle_scope = "realtime_publish"

    def lean_accept(self, data):
        channel, message = _plain_publication(data)
        return None if channel is None else (channel, message)

    def lean_serve(self, value):
        return publish(*value)

    @extend_schema(request=PublishSerializer, responses={202: OpenApiTypes.OBJECT})
    def post(self, request):
        channel, message = _plain_publication(request.data)
        if channel is None:
            data = PublishSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            channel, message = data.validated_data["channel"], data.validated_data["message"]
        sent = publish(channel, message)
        return Response(sent, status=status.HTTP_202_ACCEPTED)


def _plain_publication(data) -> tuple[str | None, dict | None]:
    """The common, valid broadcast body, checked without the serializer's machinery
    (building its fields cost about a fifth of the request, bench/README.md).

    Anything this does not accept (a missing field, a non-string, spaces the
    serializer would trim, a bad channel, a large message) goes through
    ``PublishSerializer`` for its exact answer: (None, None).
    """
    if not isinstance(data, dict):
        return None, None
    channel, message = data.get("channel"), data.get("message")
    if not isinstance(channel, str) or not isinstance(message, dict) or not 0 < len(channel) <= 100:
        return None, None
    if channel != channel.strip() or not isinstance(message.get("type"), str) or not message["type"]:
        return None, None
    try:
        channel = protocol.parse_channel(channel).name
    except protocol.ProtocolError:
        return None, None
    if message_too_large(message):
        return None, None
    return channel, message


class NotifyView(APIView):
    permission_classes = [CanPublish]
    throttle_classes = [PublishThrottle]
    throttle_scope = "realtime_publish"

    @extend_schema(request=NotifySerializer, responses={202: OpenApiTypes.OBJECT})
    def post(self, request):
        data = NotifySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user_id = data.validated_data["user_id"]  # canonical (the serializer's check)
        if not get_user_model().objects.filter(pk=int(user_id)).exists():
            raise ValidationError({"user_id": "no such user"})
        message = {k: v for k, v in data.validated_data["message"].items() if k != "type"}
        message.setdefault("kind", "message")
        sent = publish(f"user:{user_id}", {"type": "notification", **message})
        return Response(sent, status=status.HTTP_202_ACCEPTED)


class MetricsView(APIView):
    """Prometheus text format; staff only, like the stats."""

    permission_classes = [IsStaff]

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request):
        from prometheus_client import CONTENT_TYPE_LATEST

        from .metrics import render

        return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


def _task_count(hub) -> int | None:
    """Tasks alive on the hub's loop, counted on that loop (its task set is not thread-safe)."""
    loop = hub.loop
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    try:
        if asyncio.get_running_loop() is loop:
            return len(asyncio.all_tasks(loop))
    except RuntimeError:  # no loop in this thread: the usual case, an HTTP thread
        pass

    async def count() -> int:
        return len(asyncio.all_tasks())

    try:
        return asyncio.run_coroutine_threadsafe(count(), loop).result(timeout=5)
    except Exception:
        return None


class StatsView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        hub = running_hub()
        local = {}
        if hub is not None:
            local = {
                "server_id": hub.server_id,
                "connections": len(hub.connections),
                "subscriptions": {ch: len(subs) for ch, subs in hub.subscribers.items()},
                # REALTIME_GC_FREEZE: objects the collector no longer scans.
                "gc_frozen_objects": gc.get_freeze_count(),
                # What runs on the server's loop: a number that grows with no
                # connection to show for it is a leak (tests/integration/test_chaos.py).
                "tasks": _task_count(hub),
                **hub.stats,
            }
        subscriptions: dict[str, int] = {}
        for subs in Connection.objects.values_list("subscriptions", flat=True):
            for ch in subs or []:
                subscriptions[ch] = subscriptions.get(ch, 0) + 1
        # A channel held with channel presence is recorded by its member row instead.
        for ch, n in channel_presence.held_counts():
            subscriptions[ch] = subscriptions.get(ch, 0) + n
        return Response(
            {
                "connections": Connection.objects.count(),
                "connections_per_server": dict(
                    Connection.objects.values_list("server_id").annotate(n=Count("id")).values_list("server_id", "n")
                ),
                "subscriptions": subscriptions,
                "this_process": local,
                "max_connections": conf.get("WEBSOCKET_MAX_CONNECTIONS"),
            }
        )


class DisconnectView(APIView):
    """The operations console's disconnect: the admin action's, for one connection (closed with 4403)."""

    permission_classes = [IsStaff]

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT})
    def post(self, request, connection_id: str):
        if not connections.disconnect_connections([connection_id]):
            raise NotFound("no such connection")
        return Response({"disconnected": connection_id}, status=status.HTTP_202_ACCEPTED)
