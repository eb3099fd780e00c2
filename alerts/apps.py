from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime.policy import register_object_channel

        from . import signals
        from .models import Alert

        signals.connect()
        # `alert:<id>` subscriptions answer not_found for an alert that does not exist.
        register_object_channel(
            "alert", lambda object_id: object_id.isdigit() and Alert.objects.filter(pk=object_id).exists()
        )
