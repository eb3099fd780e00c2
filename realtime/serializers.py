from rest_framework import serializers

from .ids import parse_id
from .protocol import ProtocolError, iso, parse_channel
from .sizes import message_too_large


class PublishSerializer(serializers.Serializer):
    channel = serializers.CharField(max_length=100)
    message = serializers.DictField()

    def validate_channel(self, value: str) -> str:
        try:
            return parse_channel(value).name
        except ProtocolError as exc:
            raise serializers.ValidationError(exc.message) from None

    def validate_message(self, value: dict) -> dict:
        if not isinstance(value.get("type"), str) or not value["type"]:
            raise serializers.ValidationError("message needs a string 'type'")
        if problem := message_too_large(value):
            raise serializers.ValidationError(problem)
        return value


class NotifySerializer(serializers.Serializer):
    user_id = serializers.CharField(
        max_length=40, trim_whitespace=False, help_text='A user id in canonical form: "42", not "042".'
    )
    message = serializers.DictField()

    def validate_user_id(self, value: str) -> str:
        user_id = parse_id(value)
        if user_id is None:
            raise serializers.ValidationError('a user id: decimal digits without leading zeros, as in "42"')
        return str(user_id)

    def validate_message(self, value: dict) -> dict:
        # The notification adds its type and kind; the envelope reserve covers them.
        if problem := message_too_large(value):
            raise serializers.ValidationError(problem)
        return value


class PresenceStatusSerializer(serializers.Serializer):
    """The body of ``POST /api/realtime/presence/`` (for the schema; the view validates as the socket does)."""

    status = serializers.ChoiceField(choices=["online", "away", "busy"])
    activity = serializers.CharField(max_length=200, required=False, allow_null=True)


class PresenceSerializer(serializers.Serializer):
    user_id = serializers.SerializerMethodField()
    username = serializers.CharField()
    status = serializers.SerializerMethodField()
    activity = serializers.SerializerMethodField()
    last_seen = serializers.SerializerMethodField()
    connection_count = serializers.IntegerField()

    def _presence(self, user):
        return getattr(user, "presence", None)

    def get_user_id(self, user) -> str:
        return str(user.pk)

    def get_status(self, user) -> str:
        p = self._presence(user)
        return p.status if p else "offline"

    def get_activity(self, user) -> str | None:
        p = self._presence(user)
        return p.activity if p else None

    def get_last_seen(self, user) -> str | None:
        p = self._presence(user)
        return iso(p.last_seen) if p else None
