"""The shape of ``alert_trigger`` (docs/protocol.md section 4), written down once.

    {"type": "alert_trigger", "alert_id": "456", "trigger_id": "9001", "issue_id": "123",
     "data": {"message": ..., "severity": ..., "condition": "threshold"|"match",
              "value": 120, "threshold": 100 (null for match alerts)}}

Built here whole and published with ``realtime.publisher.publish`` on ``alerts``
and ``alert:<id>`` (``realtime`` knows nothing of this shape).
"""

from __future__ import annotations

from typing import Any

from realtime.publisher import publish

from .models import Alert, AlertTrigger

ALERT_TRIGGER = "alert_trigger"


def number(value: float) -> int | float:
    """120.0 goes out as 120, as in the contract's example."""
    return int(value) if float(value).is_integer() else value


def trigger_data(trigger: AlertTrigger, alert: Alert) -> dict[str, Any]:
    return {
        "message": trigger.message,
        "severity": trigger.severity,
        "condition": alert.condition,
        "value": number(trigger.value),
        "threshold": alert.threshold if alert.condition == Alert.Condition.THRESHOLD else None,
    }


def publish_trigger(trigger: AlertTrigger) -> list[dict]:
    alert = trigger.alert
    message = {
        "type": "alert_trigger",
        "alert_id": str(alert.pk),
        "trigger_id": str(trigger.pk),
        "issue_id": None if trigger.issue_id is None else str(trigger.issue_id),
        "data": trigger_data(trigger, alert),
    }
    return [publish("alerts", message), publish(f"alert:{alert.pk}", message)]
