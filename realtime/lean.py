"""The common POST of a hot endpoint, answered without DRF's per-request machinery.

``POST /api/realtime/broadcast/`` and ``POST /api/events/`` are the hot path
of publishing: DRF's ``Request`` wrapper, content negotiation, lazy
authentication and ``initial()`` cost more server CPU than the work they
guard (bench/README.md, "Lean publish path"). A view based on ``LeanPost`` (an ``APIView``) first
tries the plain case with the view's own classes, called once each:

1. a JSON body (``Content-Type: application/json``, a ``Content-Length`` within
   ``DATA_UPLOAD_MAX_MEMORY_SIZE``), a JSON answer accepted (no ``Accept``,
   ``*/*`` or ``application/json``, no ``?format=``);
2. the view's first authenticator is a JWT one and accepts the request (the
   one DRF would use: it stops at the first that answers);
3. every permission class allows it;
4. the body parses with the view's JSON parser and ``lean_accept`` takes it;
5. the view's one throttle allows it (and counts it).

If any step says no, nothing has been counted and the request goes through
DRF as before, which gives its exact answer (401, 403, 400 with the field,
415, 429 ...). Past step 5, ``lean_serve`` runs and its data is rendered by the
view's first renderer in a DRF ``Response`` with the headers DRF adds, so the
answer is byte for byte what DRF gives; an exception goes through the
project's exception handler as in DRF. The OpenAPI schema is the view's, unchanged.
"""

from __future__ import annotations

import functools
import io

from django.conf import settings
from django.utils.cache import patch_vary_headers
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

JSON = "application/json"
ACCEPTED = frozenset(("", "*/*", JSON))


class LeanPost(APIView):
    lean_status = 202

    def lean_accept(self, data):
        """The validated value of a plain, valid body, or None to let DRF answer."""
        raise NotImplementedError

    def lean_serve(self, value):
        """Do the work; returns the response data."""
        raise NotImplementedError

    @classmethod
    def as_view(cls, **initkwargs):
        drf_view = super().as_view(**initkwargs)

        @functools.wraps(drf_view)  # keeps cls, initkwargs and csrf_exempt, which the schema reads
        def view(request, *args, **kwargs):
            if request.method == "POST":
                response = cls(**initkwargs).lean_post(request, args, kwargs)
                if response is not None:
                    return response
            return drf_view(request, *args, **kwargs)

        return view

    def lean_post(self, request, args, kwargs):
        meta = request.META
        if getattr(self.renderer_classes[0], "media_type", None) != JSON:
            return None
        if request.content_type != JSON or meta.get("HTTP_ACCEPT", "") not in ACCEPTED or "format" in request.GET:
            return None
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length <= 0 or (limit is not None and length > limit):
            return None
        authenticators = self.get_authenticators()
        if not authenticators or not isinstance(authenticators[0], JWTAuthentication):
            return None
        try:
            answer = authenticators[0].authenticate(request)
        except Exception:  # DRF's answer for a bad token (401) comes from its own path
            return None
        if answer is None:
            return None
        request.user, request.auth = answer  # as DRF sets them on the request it wraps
        if not all(permission.has_permission(request, self) for permission in self.get_permissions()):
            return None
        parsers = [p for p in self.get_parsers() if p.media_type == JSON]
        if not parsers:
            return None
        context = {"view": self, "args": args, "kwargs": kwargs, "request": request}
        try:
            data = parsers[0].parse(
                io.BytesIO(request.body),
                request.META.get("CONTENT_TYPE"),
                {**context, "encoding": request.encoding or settings.DEFAULT_CHARSET},
            )
        except Exception:
            return None
        value = self.lean_accept(data)
        if value is None:
            return None
        throttles = self.get_throttles()
        if len(throttles) > 1 or (throttles and not throttles[0].allow_request(request, self)):
            return None
        self.args, self.kwargs, self.request = args, kwargs, None
        try:
            response = Response(self.lean_serve(value), status=self.lean_status)
        except Exception as exc:
            response = self.get_exception_handler()(exc, context)
            if response is None:
                raise
        return self.lean_finalize(response, context)

    def lean_finalize(self, response: Response, context: dict) -> Response:
        """What ``APIView.finalize_response`` does for a JSON answer."""
        response.accepted_renderer = self.renderer_classes[0]()
        response.accepted_media_type = JSON
        response.renderer_context = context  # type: ignore[attr-defined]  # set by finalize_response in DRF too
        headers = self.default_response_headers
        vary = headers.pop("Vary", None)
        if vary is not None:
            patch_vary_headers(response, [vary])
        for key, value in headers.items():
            response[key] = value
        return response
