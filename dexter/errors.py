"""Errors under ``/api/`` are JSON, as DRF's own are (PROTOCOL.md section 8: ``{"detail": ...}``).

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
