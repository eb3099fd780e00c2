from django.contrib import admin

from .models import Alert, AlertTrigger


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "condition", "threshold", "window_seconds", "severity", "is_active"]
    list_filter = ["condition", "severity", "is_active"]
    search_fields = ["name", "pattern"]


@admin.register(AlertTrigger)
class AlertTriggerAdmin(admin.ModelAdmin):
    list_display = ["id", "alert", "issue", "severity", "value", "triggered_at"]
    list_filter = ["severity", "alert"]
    raw_id_fields = ["issue"]
    readonly_fields = ["triggered_at"]
