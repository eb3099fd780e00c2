"""dexter/csp.py: the cached policy gives the headers django-csp's own middleware gives."""

from __future__ import annotations

import pytest
from csp.middleware import CSPMiddleware
from django.http import HttpResponse, HttpResponseNotFound
from django.test import RequestFactory

from dexter.csp import CachedCSPMiddleware

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")


def headers_from(middleware_class, path: str, make_response, use_nonce: bool = False) -> dict:
    request = RequestFactory().get(path)
    middleware = middleware_class(lambda r: None)
    middleware.process_request(request)
    nonce = str(request.csp_nonce) if use_nonce else None
    response = middleware.process_response(request, make_response())
    out = {h: response.headers.get(h) for h in HEADERS}
    if nonce:
        out["nonce-in-policy"] = nonce in (out[HEADERS[0]] or "")
    return out


def exempt():
    response = HttpResponse("x")
    response._csp_exempt = True
    return response


def updated():
    response = HttpResponse("x")
    response._csp_update = {"img-src": ["https://example.com"]}
    return response


CASES = [
    ("/", lambda: HttpResponse("page"), False),
    ("/api/events/", lambda: HttpResponse("{}", content_type="application/json"), False),
    ("/admin/login/", lambda: HttpResponse("admin"), False),  # an excluded prefix
    ("/api/docs/", lambda: HttpResponse("docs"), False),
    ("/", exempt, False),
    ("/", updated, False),
    ("/", lambda: HttpResponse("page"), True),  # a page that used the nonce
    ("/missing/", HttpResponseNotFound, False),
]


@pytest.mark.parametrize("report_only", [False, True])
@pytest.mark.parametrize("path,make_response,use_nonce", CASES)
def test_the_same_headers_as_django_csp(settings, report_only, path, make_response, use_nonce):
    if report_only:
        settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = settings.CONTENT_SECURITY_POLICY
        settings.CONTENT_SECURITY_POLICY = None
    for _ in range(2):  # the second answer comes from the cache
        assert headers_from(CachedCSPMiddleware, path, make_response, use_nonce) == headers_from(
            CSPMiddleware, path, make_response, use_nonce
        )


def test_a_changed_setting_is_a_new_policy(settings):
    before = headers_from(CachedCSPMiddleware, "/", lambda: HttpResponse("x"))
    settings.CONTENT_SECURITY_POLICY = {
        **settings.CONTENT_SECURITY_POLICY,
        "DIRECTIVES": {**settings.CONTENT_SECURITY_POLICY["DIRECTIVES"], "img-src": ["'self'", "https://cdn.test"]},
    }
    after = headers_from(CachedCSPMiddleware, "/", lambda: HttpResponse("x"))
    assert before != after and "https://cdn.test" in after["Content-Security-Policy"]
