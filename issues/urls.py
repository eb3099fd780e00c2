from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("issues", views.IssueViewSet, basename="issue")

urlpatterns = [
    path("issues/<int:issue_id>/comments/", views.CommentListView.as_view(), name="issue-comments"),
    path("events/", views.EventIngestView.as_view(), name="events"),
    *router.urls,
]
