from django.urls import path
from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("alerts/<int:alert_id>/triggers/", views.AlertTriggerListView.as_view(), name="alert-triggers"),
    *router.urls,
]
