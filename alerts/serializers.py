"""REST shapes of alerts and their triggers (docs/protocol.md section 8); ids are strings."""

from __future__ import annotations

import re

from rest_framework import serializers

from issues.serializers import StringIdField, StringPrimaryKeyField

from .models import Alert, AlertTrigger


class AlertSerializer(serializers.ModelSerializer):
    id = StringIdField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "name",
            "condition",
            "threshold",
            "window_seconds",
            "pattern",
            "level",
            "severity",
            "cooldown_seconds",
            "is_active",
        ]

    def validate_pattern(self, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise serializers.ValidationError(f"not a regular expression: {exc}") from None
        return value

    def validate_window_seconds(self, value: int) -> int:
        if value < 1:
            raise serializers.ValidationError("must be at least 1")
        return value


class AlertTriggerSerializer(serializers.ModelSerializer):
    id = StringIdField()
    alert = StringPrimaryKeyField(read_only=True)
    issue = StringPrimaryKeyField(read_only=True)

    class Meta:
        model = AlertTrigger
        fields = ["id", "alert", "issue", "message", "severity", "value", "triggered_at"]
        read_only_fields = fields
