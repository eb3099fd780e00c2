from django.urls import path
from rest_framework.routers import SimpleRouter

from realtime.ids import register_id_converter

from . import timeline, views

register_id_converter()

router = SimpleRouter()
router.register("issues", views.IssueViewSet, basename="issue")

urlpatterns = [
    path("issues/<id:issue_id>/comments/", views.CommentListView.as_view(), name="issue-comments"),
    path("issues/<id:issue_id>/events/timeline/", timeline.IssueTimelineView.as_view(), name="issue-timeline"),
    path("events/", views.EventIngestView.as_view(), name="events"),
    *router.urls,
]
