from django.apps import AppConfig


class IssuesConfig(AppConfig):
    name = "issues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime.policy import register_object_channel

        from . import signals
        from .models import Issue

        signals.connect()
        # `issue:<id>` subscriptions answer not_found for an issue that does not exist.
        register_object_channel(
            "issue", lambda object_id: object_id.isdigit() and Issue.objects.filter(pk=object_id).exists()
        )
