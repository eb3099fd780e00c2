"""REST shapes of alerts and their triggers (docs/protocol.md section 8); ids are strings."""

from __future__ import annotations

import re

from rest_framework import serializers

from issues.serializers import StringIdField, StringPrimaryKeyField

from .models import MAX_COOLDOWN_SECONDS, MAX_THRESHOLD, MAX_WINDOW_SECONDS, Alert, AlertTrigger


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
        extra_kwargs = {
            "window_seconds": {"min_value": 1, "max_value": MAX_WINDOW_SECONDS},
            "cooldown_seconds": {"min_value": 0, "max_value": MAX_COOLDOWN_SECONDS},
            "threshold": {"min_value": 0, "max_value": MAX_THRESHOLD},
        }

    def validate_pattern(self, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise serializers.ValidationError(f"not a regular expression: {exc}") from None
        return value


class AlertTriggerSerializer(serializers.ModelSerializer):
    id = StringIdField()
    alert = StringPrimaryKeyField(read_only=True)
    # Null once the issue is deleted: a trigger is kept as history (models.py).
    issue = StringPrimaryKeyField(read_only=True, allow_null=True)

    class Meta:
        model = AlertTrigger
        fields = ["id", "alert", "issue", "message", "severity", "value", "triggered_at"]
        read_only_fields = fields
