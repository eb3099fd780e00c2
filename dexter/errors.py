"""Errors under ``/api/`` are JSON, as DRF's own are (docs/protocol.md section 8: ``{"detail": ...}``).

Django answers a URL that matches no pattern with its HTML 404 page (and an
unhandled error with its HTML 500 page); an API client gets ``{"detail": ...}``
with the same status instead. Pages outside ``/api/`` keep Django's pages.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse({"detail": "A server error occurred."}, status=500)
    return defaults.server_error(request)


def exception_handler(exc, context):
    """DRF's handler, plus: a write whose publication ``publish()`` refused is the client's 400.

    The serializers keep writes under ``REALTIME_MAX_PUBLICATION_SIZE`` where
    user text can grow (a comment's body); this catches the rest (a deployment
    with a bound smaller than an issue's own fields), and the write's
    transaction has rolled back by then: nothing was stored.
    """
    from rest_framework import status
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler

    from realtime.publisher import PublicationTooLarge

    if isinstance(exc, PublicationTooLarge):
        return Response(
            {"detail": f"the change would make a publication too large: {exc}"}, status=status.HTTP_400_BAD_REQUEST
        )
    return drf_exception_handler(exc, context)
