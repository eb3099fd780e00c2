"""Admin for issues and comments; saves made here name the admin user as the actor."""

from django.contrib import admin

from .actor import acting_as
from .models import Comment, Event, Issue


class CommentInline(admin.TabularInline):
    model = Comment
    extra = 0
    fields = ["author", "body", "created_at"]
    readonly_fields = ["author", "created_at"]


class ActingAdminMixin:
    def save_model(self, request, obj, form, change):
        with acting_as(request.user):
            super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        with acting_as(request.user):
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with acting_as(request.user):
            super().delete_queryset(request, queryset)


@admin.register(Issue)
class IssueAdmin(ActingAdminMixin, admin.ModelAdmin):
    list_display = ["id", "title", "level", "status", "assignee", "event_count", "last_seen"]
    list_filter = ["status", "level"]
    search_fields = ["title", "culprit", "fingerprint"]
    raw_id_fields = ["assignee"]
    # Counts belong to ingestion (atomic UPDATEs); a form must not write them back.
    readonly_fields = ["event_count", "first_seen", "last_seen", "created_at", "updated_at"]
    inlines = [CommentInline]

    def save_formset(self, request, form, formset, change):
        with acting_as(request.user):
            for comment in formset.save(commit=False):
                if comment.pk is None and comment.author_id is None:
                    comment.author = request.user
                comment.save()
            for comment in formset.deleted_objects:
                comment.delete()
            formset.save_m2m()


@admin.register(Comment)
class CommentAdmin(ActingAdminMixin, admin.ModelAdmin):
    list_display = ["id", "issue", "author", "created_at"]
    raw_id_fields = ["issue", "author"]
    search_fields = ["body"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "issue", "level", "received_at"]
    raw_id_fields = ["issue"]
    list_filter = ["level"]
