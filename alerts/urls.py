from django.urls import path
from rest_framework.routers import SimpleRouter

from realtime.ids import register_id_converter

from . import views

register_id_converter()

router = SimpleRouter()
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path("alerts/<id:alert_id>/triggers/", views.AlertTriggerListView.as_view(), name="alert-triggers"),
    *router.urls,
]
