"""The real-time tables in the Django admin: who is online, live connections, servers, history.

Everything here is read-only: rows are written by the servers themselves. The
one thing an administrator does is "disconnect selected connections", which
closes those sockets with 4403 wherever they live (``connections.disconnect_connections``).
"""

from django.contrib import admin, messages
from django.db.models import Count
from django.utils.translation import ngettext

from . import channel_presence, connections
from .models import ChannelMember, ChannelSequence, Connection, Message, Presence, ServerInstance


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows owned by the servers: viewable, never added, edited or deleted by hand.

    A deleted sequence would restart a channel at seq 1 (clients drop what they
    think are repeats), a hole in history breaks ``since``, and a deleted
    server or connection row is the disconnect action's job, which says so.
    """

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Presence)
class PresenceAdmin(ReadOnlyAdmin):
    list_display = ("user", "status", "activity", "last_seen", "offline_pending_since", "connection_count")
    list_filter = ("status", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__username", "user__email", "activity")
    list_select_related = ("user",)
    readonly_fields = ("user", "status", "activity", "last_seen", "offline_pending_since", "updated_at")
    ordering = ("user__username",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_connections=Count("user__connection"))

    @admin.display(description="connections", ordering="_connections")
    def connection_count(self, obj) -> int:
        return obj._connections


@admin.register(Connection)
class ConnectionAdmin(ReadOnlyAdmin):
    list_display = ("id", "client_id", "user", "server", "ip", "connected_at", "last_heartbeat_at", "channels")
    list_filter = (("user", admin.RelatedOnlyFieldListFilter), "server", "connected_at")
    search_fields = ("id", "client_id", "user__username", "ip", "user_agent")
    list_select_related = ("user", "server")
    readonly_fields = (
        "id",
        "client_id",
        "user",
        "server",
        "subscriptions",
        "ip",
        "user_agent",
        "connected_at",
        "last_heartbeat_at",
    )
    actions = ["disconnect_selected"]

    @admin.display(description="subscriptions")
    def channels(self, obj) -> str:
        # Channels held with channel presence are in ChannelMember rows, not in the column.
        held = getattr(obj, "held_with_presence", None)
        if held is None:
            held = channel_presence.held_by([obj.pk]).get(obj.pk, [])
        return ", ".join(sorted({*(obj.subscriptions or []), *held}))

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # One query for the page's member rows, not one per row.
        page = list(changelist.result_list)
        held = channel_presence.held_by([c.pk for c in page])
        for conn in page:
            conn.held_with_presence = held.get(conn.pk, [])
        return changelist

    def has_disconnect_permission(self, request) -> bool:
        return request.user.has_perm("realtime.delete_connection")

    @admin.action(description="Disconnect selected connections (close 4403)", permissions=["disconnect"])
    def disconnect_selected(self, request, queryset):
        ids = list(queryset.values_list("id", flat=True))
        count = connections.disconnect_connections(ids)
        self.message_user(
            request,
            ngettext("Disconnected %d connection.", "Disconnected %d connections.", count) % count,
            messages.SUCCESS,
        )


@admin.register(ServerInstance)
class ServerInstanceAdmin(ReadOnlyAdmin):
    list_display = ("id", "hostname", "pid", "started_at", "heartbeat_at", "stopped_at", "connection_count")
    list_filter = ("hostname", ("stopped_at", admin.EmptyFieldListFilter))
    search_fields = ("id", "hostname")
    readonly_fields = ("id", "hostname", "pid", "started_at", "heartbeat_at", "stopped_at")
    ordering = ("-started_at",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_connections=Count("connections"))

    @admin.display(description="connections", ordering="_connections")
    def connection_count(self, obj) -> int:
        return obj._connections


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("channel", "seq", "type", "created_at")
    list_filter = ("type", "channel")
    search_fields = ("channel", "type", "payload")
    readonly_fields = ("channel", "seq", "type", "payload", "created_at")
    date_hierarchy = "created_at"


@admin.register(ChannelSequence)
class ChannelSequenceAdmin(ReadOnlyAdmin):
    list_display = ("channel", "last_seq")
    search_fields = ("channel",)
    readonly_fields = ("channel", "last_seq")


@admin.register(ChannelMember)
class ChannelMemberAdmin(ReadOnlyAdmin):
    """Who is on which channel, since when, doing what (section 10); rows in their reload grace show left_at."""

    list_display = ("channel", "user", "activity", "since", "updated_at", "left_at", "connection_id")
    list_filter = (("user", admin.RelatedOnlyFieldListFilter), "activity")
    search_fields = ("channel", "user__username", "activity", "connection_id")
    list_select_related = ("user",)
    readonly_fields = ("channel", "user", "activity", "since", "updated_at", "left_at", "connection_id", "server_id")
    ordering = ("channel", "since")
