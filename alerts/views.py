"""REST endpoints for alerts (reads: any authenticated user; writes: staff) and their triggers."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import generics, viewsets
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated

from realtime.ids import IdConverter
from realtime.permissions import IsStaff
from realtime.position import PositionMixin

from .models import Alert
from .serializers import AlertSerializer, AlertTriggerSerializer


class AlertViewSet(PositionMixin, viewsets.ModelViewSet):
    serializer_class = AlertSerializer
    queryset = Alert.objects.all()
    lookup_value_regex = IdConverter.regex  # canonical ids only: "01" or "٣" is a 404

    def position_channels(self) -> list[str]:
        # What changes an alert for a client is its triggers: `alerts`, `alert:<id>` (section 12).
        return ["alerts"] if self.action == "list" else [f"alert:{int(self.kwargs['pk'])}"]

    def get_permissions(self):
        if self.request is not None and self.request.method in SAFE_METHODS:
            return [IsAuthenticated()]
        return [IsStaff()]


class AlertTriggerListView(PositionMixin, generics.ListAPIView):
    """The triggers of one alert, newest first."""

    serializer_class = AlertTriggerSerializer

    def position_channels(self) -> list[str]:
        return [f"alert:{int(self.kwargs['alert_id'])}"]

    def get_queryset(self):
        alert = get_object_or_404(Alert, pk=self.kwargs["alert_id"])
        return alert.triggers.all()
