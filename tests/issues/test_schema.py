"""The OpenAPI schema generates, and the issues/alerts views add no warning or error to it."""

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

DOMAIN_PATHS = [
    "/api/issues/",
    "/api/issues/{id}/",
    "/api/issues/{issue_id}/comments/",
    "/api/events/",
    "/api/alerts/",
    "/api/alerts/{id}/",
    "/api/alerts/{alert_id}/triggers/",
]


def test_schema_has_domain_paths_without_warnings():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    problems = [
        msg
        for msg in (*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache)
        if "/issues/" in msg or "/alerts/" in msg or "Issue" in msg or "Alert" in msg or "Event" in msg
    ]
    GENERATOR_STATS.reset()
    assert problems == []
    for path in DOMAIN_PATHS:
        assert path in schema["paths"], path
    assert "202" in schema["paths"]["/api/events/"]["post"]["responses"]
    params = {p["name"] for p in schema["paths"]["/api/issues/"]["get"]["parameters"]}
    assert {"status", "level", "assignee", "ordering", "limit", "offset"} <= params
    assert schema["components"]["schemas"]["Issue"]["properties"]["id"]["type"] == "string"


def test_schema_endpoint_serves(auth_api, alice):
    response = auth_api(alice).get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/issues/{issue_id}/comments/" in response.content


def test_whole_schema_generates_without_any_warning_or_error():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    problems = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    GENERATOR_STATS.reset()
    assert problems == []
    for path in ("/api/realtime/broadcast/", "/api/realtime/presence/", "/api/realtime/channels/{channel}/history/"):
        assert path in schema["paths"], path
