from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Real-time"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth import get_user_model
        from django.core import checks
        from django.db import models

        from . import policy, registry
        from .checks import check_settings

        checks.register(check_settings, "realtime")

        # The kinds of realtime itself (docs/protocol.md section 2); a project's
        # apps register theirs the same way from their own ready().
        registry.register_channel("global", anonymous=True)
        registry.register_channel("presence")
        # The live operations console's samples (realtime/ops.py): staff only.
        registry.register_channel("ops", can_subscribe=policy.staff_only)
        pk = get_user_model()._meta.pk
        integer_pk = isinstance(pk, models.IntegerField)  # AutoField and BigAutoField included
        registry.register_channel(
            "user",
            object_id=True,
            ids=registry.INT_IDS if integer_pk else registry.STR_IDS,
            can_subscribe=policy.own_user_channel,
        )

        # Revocation's immediate path: deactivated or deleted users, blacklisted tokens (4403).
        from . import revocation_signals

        revocation_signals.connect()
