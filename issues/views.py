"""REST endpoints for issues, comments and event ingestion (docs/protocol.md section 7).

Writes run inside ``acting_as(request.user)`` so the published messages name
the acting user (``resolved_by``, the assignment's ``by``); the publishing
itself happens in the model signals, not here.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from realtime.ids import IdConverter, parse_id
from realtime.lean import LeanPost
from realtime.position import PositionMixin
from realtime.throttles import SlicedRateThrottle

from .actor import acting_as
from .events import batch_limit, ingest_events
from .models import Issue
from .serializers import CommentSerializer, EventAcceptedSerializer, EventSerializer, IssueSerializer

ORDERING_FIELDS = (
    "id",
    "title",
    "level",
    "status",
    "event_count",
    "first_seen",
    "last_seen",
    "created_at",
    "updated_at",
)


class ActingUserMixin:
    """Attribute the saves of create, update and destroy to the request's user."""

    def perform_create(self, serializer):
        with acting_as(self.request.user):
            super().perform_create(serializer)

    def perform_update(self, serializer):
        with acting_as(self.request.user):
            super().perform_update(serializer)

    def perform_destroy(self, instance):
        with acting_as(self.request.user):
            super().perform_destroy(instance)


def _choice(params, name: str, choices) -> str | None:
    value = params.get(name)
    if value is not None and value not in choices:
        raise ValidationError({name: f"one of {', '.join(choices)}"})
    return value


LIST_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=Issue.Status.values),
    OpenApiParameter("level", OpenApiTypes.STR, enum=Issue.Level.values),
    OpenApiParameter("assignee", OpenApiTypes.STR, description='A user id, "me" or "none".'),
    OpenApiParameter(
        "ordering",
        OpenApiTypes.STR,
        description=f"Comma-separated fields, '-' for descending: {', '.join(ORDERING_FIELDS)}.",
    ),
]


@extend_schema_view(list=extend_schema(parameters=LIST_PARAMETERS))
class IssueViewSet(PositionMixin, ActingUserMixin, viewsets.ModelViewSet):
    serializer_class = IssueSerializer
    queryset = Issue.objects.all()
    lookup_value_regex = IdConverter.regex  # canonical ids only: "01" or "٣" is a 404

    def position_channels(self) -> list[str]:
        # The list's changes are all on `issues`; one issue's on `issue:<id>` (section 12).
        return ["issues"] if self.action == "list" else [f"issue:{int(self.kwargs['pk'])}"]

    def get_queryset(self):
        queryset = Issue.objects.all()
        if self.action != "list":
            return queryset
        params = self.request.query_params
        if value := _choice(params, "status", Issue.Status.values):
            queryset = queryset.filter(status=value)
        if value := _choice(params, "level", Issue.Level.values):
            queryset = queryset.filter(level=value)
        assignee = params.get("assignee")
        if assignee == "me":
            queryset = queryset.filter(assignee=self.request.user)
        elif assignee == "none":
            queryset = queryset.filter(assignee__isnull=True)
        elif assignee is not None:
            if (user_id := parse_id(assignee)) is None:
                raise ValidationError({"assignee": 'a user id, "me" or "none"'})
            queryset = queryset.filter(assignee_id=user_id)
        if ordering := params.get("ordering"):
            fields = [f.strip() for f in ordering.split(",") if f.strip()]
            if not fields or any(f.removeprefix("-") not in ORDERING_FIELDS for f in fields):
                raise ValidationError({"ordering": f"comma-separated fields of {', '.join(ORDERING_FIELDS)}"})
            queryset = queryset.order_by(*fields, "-id")
        return queryset


class CommentListView(PositionMixin, generics.ListCreateAPIView):
    """The comments of one issue, oldest first; a POST comments as the caller."""

    serializer_class = CommentSerializer

    def position_channels(self) -> list[str]:
        # New comments are published as `commented` on `issue:<id>`.
        return [f"issue:{int(self.kwargs['issue_id'])}"]

    def get_issue(self) -> Issue:
        return get_object_or_404(Issue, pk=self.kwargs["issue_id"])

    def get_queryset(self):
        return self.get_issue().comments.all()

    def perform_create(self, serializer):
        with acting_as(self.request.user):
            serializer.save(issue=self.get_issue(), author=self.request.user)


EVENT_FIELDS = frozenset(("title", "culprit", "level", "fingerprint"))
LEVELS = frozenset(Issue.Level.values)


def plain_events(items: list) -> list[dict] | None:
    """The common, valid events, checked without the serializer's machinery (it
    cost more than the ingestion itself on this hot path, bench/README.md).

    Anything it does not accept (a missing title, a non-string, blanks or spaces
    the serializer would trim or refuse, an unknown level or key) returns None,
    and ``EventSerializer`` gives its exact answer.
    """
    out = []
    for item in items:
        if not isinstance(item, dict) or not EVENT_FIELDS.issuperset(item):
            return None
        title, culprit = item.get("title"), item.get("culprit", "")
        level, fingerprint = item.get("level", Issue.Level.ERROR), item.get("fingerprint")
        if not isinstance(title, str) or not title or len(title) > 255 or title != title.strip():
            return None
        if not isinstance(culprit, str) or len(culprit) > 255 or culprit != culprit.strip():
            return None
        # isinstance first: a dict or list level is unhashable (found by schemathesis).
        if not isinstance(level, str) or level not in LEVELS:
            return None
        if fingerprint is not None and not isinstance(fingerprint, str):
            return None
        if fingerprint is not None and (len(fingerprint) > 255 or fingerprint != fingerprint.strip()):
            return None
        out.append({"title": title, "culprit": culprit, "level": level, "fingerprint": fingerprint})
    return out


class EventIngestView(LeanPost):
    """Ingest one error event, or a list of up to ISSUES_EVENTS_BATCH_LIMIT in one transaction.

    202 with the issue each was grouped into and its count: an object for an
    object, a list (in order) for a list. The plain valid case is served by
    ``LeanPost`` (realtime/lean.py), anything else by ``post``.
    """

    throttle_classes = [SlicedRateThrottle]  # DRF's scoped rate, a bounded state (realtime/throttles.py)
    throttle_scope = "events"

    def lean_accept(self, data):
        many = isinstance(data, list)
        if many and not 0 < len(data) <= batch_limit():
            return None
        batch = plain_events(data if many else [data])
        return None if batch is None else (many, batch)

    def lean_serve(self, value):
        many, batch = value
        return _answer(ingest_events(batch), many)

    @extend_schema(
        request=EventSerializer,
        responses={202: EventAcceptedSerializer},
        description="The body may also be a JSON list of events (at most ISSUES_EVENTS_BATCH_LIMIT, "
        "default 1000); the answer is then the list of results, in order.",
    )
    def post(self, request):
        many = isinstance(request.data, list)
        if many and not request.data:
            raise ValidationError({"events": "an empty list"})
        if many and len(request.data) > batch_limit():
            raise ValidationError({"events": f"at most {batch_limit()} events per request"})
        batch = plain_events(request.data if many else [request.data])
        if batch is None:
            events = EventSerializer(data=request.data, many=many)
            events.is_valid(raise_exception=True)
            batch = events.validated_data if many else [events.validated_data]
        return Response(_answer(ingest_events(batch), many), status=status.HTTP_202_ACCEPTED)


def _answer(results, many: bool):
    body = [{"issue_id": str(r.issue.pk), "event_count": r.event_count} for r in results]
    return body if many else body[0]
