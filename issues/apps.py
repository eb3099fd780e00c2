from django.apps import AppConfig


class IssuesConfig(AppConfig):
    name = "issues"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from realtime.registry import INT_IDS, register_channel

        from .models import Issue
        from .publishing import track_issues_and_comments

        track_issues_and_comments()
        # docs/protocol.md section 2: `issues` for authenticated users, and
        # `issue:<id>` of an issue that exists (not_found otherwise), with
        # channel presence and signals (sections 10 and 11).
        register_channel("issues")
        register_channel(
            "issue",
            object_id=True,
            ids=INT_IDS,
            exists=lambda object_id: Issue.objects.filter(pk=int(object_id)).exists(),
            presence=True,
            signals=True,
        )
