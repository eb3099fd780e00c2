from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime.registry import INT_IDS, register_channel

        from . import signals
        from .models import Alert

        signals.connect()
        # docs/protocol.md section 2: `alerts` for authenticated users, and
        # `alert:<id>` of an alert that exists (not_found otherwise), with
        # channel presence and signals (sections 10 and 11).
        register_channel("alerts")
        register_channel(
            "alert",
            object_id=True,
            ids=INT_IDS,
            exists=lambda object_id: Alert.objects.filter(pk=int(object_id)).exists(),
            presence=True,
            signals=True,
        )
