"""The REST shapes of issues, comments and events (docs/protocol.md section 8); ids are strings."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from realtime.sizes import text_too_large

from .models import Comment, Issue, derive_fingerprint

# What an ``issue_update`` holds besides a comment's body: the envelope, the
# issue's state (title, culprit up to 255 characters each) and the comment's other fields.
COMMENT_MESSAGE_RESERVE = 8192


@extend_schema_field(OpenApiTypes.STR)
class StringPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A related object's id, written as "42" or 42 and read as "42"."""

    def to_representation(self, value) -> str:
        return str(value.pk)


@extend_schema_field(OpenApiTypes.STR)
class StringIdField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)


class IssueSerializer(serializers.ModelSerializer):
    id = StringIdField()
    assignee = StringPrimaryKeyField(queryset=get_user_model().objects.all(), allow_null=True, required=False)
    fingerprint = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="Derived from title and culprit when empty."
    )

    class Meta:
        model = Issue
        fields = [
            "id",
            "title",
            "culprit",
            "level",
            "status",
            "assignee",
            "fingerprint",
            "event_count",
            "first_seen",
            "last_seen",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["event_count", "first_seen", "last_seen", "created_at", "updated_at"]

    def validate(self, attrs):
        instance = self.instance
        if instance is None and not attrs.get("fingerprint"):
            attrs["fingerprint"] = derive_fingerprint(attrs.get("title", ""), attrs.get("culprit", ""))
        fingerprint = attrs.get("fingerprint")
        if instance is not None and "fingerprint" in attrs and not fingerprint:
            raise serializers.ValidationError({"fingerprint": "may not be blank"})
        if fingerprint:
            taken = Issue.objects.filter(fingerprint=fingerprint)
            if instance is not None:
                taken = taken.exclude(pk=instance.pk)
            if taken.exists():
                raise serializers.ValidationError({"fingerprint": "an issue with this fingerprint exists"})
        return attrs


class CommentSerializer(serializers.ModelSerializer):
    id = StringIdField()
    issue = StringPrimaryKeyField(read_only=True)
    author = StringPrimaryKeyField(read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "issue", "author", "body", "created_at"]
        read_only_fields = ["created_at"]

    def validate_body(self, value: str) -> str:
        # Two copies: an edit publishes the old body and the new one.
        if problem := text_too_large(value, reserve=COMMENT_MESSAGE_RESERVE, copies=2):
            raise serializers.ValidationError(problem)
        return value


class EventSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=255)
    culprit = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    level = serializers.ChoiceField(choices=Issue.Level.choices, default=Issue.Level.ERROR)
    fingerprint = serializers.CharField(
        max_length=255, required=False, allow_blank=True, help_text="Derived from title and culprit when absent."
    )


class EventAcceptedSerializer(serializers.Serializer):
    issue_id = serializers.CharField()
    event_count = serializers.IntegerField()
