"""An issue's events per time bucket: the issue page's sparkline (``GET /api/issues/<id>/events/timeline/``).

Counted in the database from the ``Event`` rows (one grouped query over the
``(issue, received_at)`` index), in UTC buckets of a minute, an hour or a day,
the last one being the bucket of now. The answer carries the issue's
``event_count`` and its ``Realtime-Position``, read in the same snapshot, so a
page can grow the current bucket live from the ``issue_update`` messages after
that position: each one's ``event_count`` minus the previous is what came in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncDay, TruncHour, TruncMinute
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from realtime.position import HEADER, position_header, read_snapshot
from realtime.protocol import iso_utc

from .models import Event, Issue

BUCKETS = {"minute": (60, TruncMinute), "hour": (3600, TruncHour), "day": (86400, TruncDay)}
DEFAULT_BUCKETS = 60
MAX_BUCKETS = 366


def bucket_start(moment: datetime, seconds: int) -> datetime:
    """The start of ``moment``'s bucket, in UTC (buckets are aligned on the epoch)."""
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


def timeline(issue_id: int, bucket: str, buckets: int) -> dict:
    seconds, trunc = BUCKETS[bucket]
    now = timezone.now()
    start = bucket_start(now, seconds) - timedelta(seconds=seconds * (buckets - 1))
    counts = [0] * buckets
    rows = (
        Event.objects.filter(issue_id=issue_id, received_at__gte=start)
        .annotate(at=trunc("received_at", tzinfo=UTC))
        .values("at")
        .annotate(n=Count("id"))
        .values_list("at", "n")
    )
    for at, n in rows:
        index = int((at - start).total_seconds()) // seconds
        if 0 <= index < buckets:  # an event stamped in the future (a clock step) is left out
            counts[index] += n
    return {"bucket": bucket, "bucket_seconds": seconds, "start": iso_utc(start), "now": iso_utc(now), "counts": counts}


class TimelineSerializer(serializers.Serializer):
    bucket = serializers.ChoiceField(choices=list(BUCKETS))
    bucket_seconds = serializers.IntegerField()
    start = serializers.DateTimeField(help_text="The start of the first bucket (UTC).")
    now = serializers.DateTimeField(help_text="The server's time of the read.")
    counts = serializers.ListField(child=serializers.IntegerField(), help_text="Events per bucket, oldest first.")
    event_count = serializers.IntegerField(help_text="The issue's event count, read in the same snapshot.")


class IssueTimelineView(APIView):
    """Events of one issue per minute (or hour, or day), the last bucket being now's."""

    @extend_schema(
        parameters=[
            OpenApiParameter("bucket", OpenApiTypes.STR, enum=list(BUCKETS), description="default minute"),
            OpenApiParameter("buckets", OpenApiTypes.INT, description=f"1-{MAX_BUCKETS}, default {DEFAULT_BUCKETS}"),
        ],
        responses={200: TimelineSerializer},
    )
    def get(self, request, issue_id: int):
        bucket = request.query_params.get("bucket", "minute")
        if bucket not in BUCKETS:
            raise ValidationError({"bucket": f"one of {', '.join(BUCKETS)}"})
        raw = request.query_params.get("buckets", str(DEFAULT_BUCKETS))
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_BUCKETS:
            raise ValidationError({"buckets": f"an integer from 1 to {MAX_BUCKETS}"})
        channel = f"issue:{int(issue_id)}"
        with read_snapshot():
            issue = get_object_or_404(Issue.objects.only("event_count"), pk=issue_id)
            body = {**timeline(issue.pk, bucket, int(raw)), "event_count": issue.event_count}
            position = position_header([channel])
        response = Response(body)
        response[HEADER] = position
        return response
