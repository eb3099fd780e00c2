"""The real-time layer's tables: stored publications, presence, live connections.

The database is the truth and the channel layer only the doorbell: a message is
delivered only after it is stored here, so a client can always recover it.
"""

from django.conf import settings
from django.db import models


class ChannelSequence(models.Model):
    """The last ``seq`` given out on one channel; its row lock orders publishers."""

    channel = models.CharField(max_length=100, primary_key=True)
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.channel} @ {self.last_seq}"


class Message(models.Model):
    """One publication, exactly as sent on the wire (``payload`` is the encoded frame)."""

    channel = models.CharField(max_length=100)
    seq = models.BigIntegerField()
    type = models.CharField(max_length=50)
    payload = models.TextField(help_text="The JSON frame as delivered, envelope included.")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "seq"], name="realtime_message_channel_seq")]
        ordering = ["channel", "seq"]
        # Given to service accounts that may use the broadcast and notify endpoints.
        permissions = [("publish_message", "Can publish on any real-time channel")]

    def __str__(self) -> str:
        return f"{self.channel}#{self.seq} {self.type}"


class ServerInstance(models.Model):
    """A running server process; one whose heartbeat stops is pruned by the others."""

    id = models.CharField(max_length=64, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Where this server hears doorbells from other processes of its host
    # ("udp:127.0.0.1:<port>"; realtime/doorbell.py), "" when it has none.
    doorbell = models.CharField(max_length=100, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid} ({self.id[:8]})"


class Connection(models.Model):
    """One live WebSocket connection. Rows exist only while the socket is open."""

    id = models.CharField(max_length=64, primary_key=True, verbose_name="connection id")
    client_id = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    server = models.ForeignKey(ServerInstance, on_delete=models.CASCADE, related_name="connections")
    subscriptions = models.JSONField(default=list, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    connected_at = models.DateTimeField()
    last_heartbeat_at = models.DateTimeField()

    class Meta:
        ordering = ["-connected_at"]

    def __str__(self) -> str:
        return f"{self.client_id} ({self.user or 'anonymous'})"


class Presence(models.Model):
    """A user's status as everyone else sees it."""

    STATUS_CHOICES = [("online", "online"), ("away", "away"), ("busy", "busy"), ("offline", "offline")]

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presence")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="offline", db_index=True)
    activity = models.CharField(max_length=200, null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    # When the last connection closed; the user stays as they were for the grace period.
    offline_pending_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "presence"

    def __str__(self) -> str:
        return f"{self.user} {self.status}"


class ChannelMember(models.Model):
    """One connection's place in one channel's presence (docs/protocol.md section 10).

    Members are users: the rows of one user on one channel are one member, with
    ``connections`` = their count. A row whose connection ended keeps its place
    for the reload grace (``left_at`` set); a reconnect takes it over, so a page
    reload is no leave and no join. ``connection_id`` is no foreign key: a
    cascade would delete the row with its connection and lose that grace.
    """

    channel = models.CharField(max_length=100, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="channel_memberships")
    connection_id = models.CharField(max_length=64, db_index=True)
    server_id = models.CharField(max_length=64)
    activity = models.CharField(max_length=200, default="viewing")
    since = models.DateTimeField(help_text="When the user joined the channel.")
    updated_at = models.DateTimeField(help_text="The last change of this row's activity.")
    left_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Its connection ended; the reload grace runs."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection_id", "channel"], name="realtime_channelmember_conn_channel")
        ]
        ordering = ["channel", "since"]

    def __str__(self) -> str:
        return f"{self.user} on {self.channel} ({self.activity})"
