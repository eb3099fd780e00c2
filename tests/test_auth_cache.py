"""dexter/auth.py: a token's user is looked up once and kept briefly, never past a revocation here."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import access_token

pytestmark = pytest.mark.django_db

BODY = {"channel": "global", "message": {"type": "announcement", "message": "hi"}}


def user_queries(queries) -> int:
    return sum('FROM "auth_user"' in q["sql"] for q in queries)


def test_the_user_is_looked_up_once_while_cached(auth_api, staff):
    api = auth_api(staff)
    with CaptureQueriesContext(connection) as first:
        assert api.post("/api/realtime/broadcast/", BODY, format="json").status_code == 202
    with CaptureQueriesContext(connection) as second:
        assert api.post("/api/realtime/broadcast/", BODY, format="json").status_code == 202
    assert user_queries(first) == 1 and user_queries(second) == 0


def test_deactivating_the_user_here_revokes_at_once(auth_api, alice):
    api = auth_api(alice)
    assert api.get("/api/issues/").status_code == 200
    alice.is_active = False
    alice.save()
    assert api.get("/api/issues/").status_code == 401


def test_deleting_the_user_revokes_at_once(auth_api, alice):
    api = auth_api(alice)
    assert api.get("/api/issues/").status_code == 200
    alice.delete()
    assert api.get("/api/issues/").status_code == 401


def test_zero_turns_the_cache_off(auth_api, staff, settings):
    settings.API_AUTH_CACHE_SECONDS = 0
    api = auth_api(staff)
    api.post("/api/realtime/broadcast/", BODY, format="json")
    with CaptureQueriesContext(connection) as again:
        assert api.post("/api/realtime/broadcast/", BODY, format="json").status_code == 202
    assert user_queries(again) == 1


def test_a_bad_token_is_never_cached(api, staff):
    bad = access_token(staff)[:-4] + "AAAA"
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {bad}")
    assert api.get("/api/issues/").status_code == 401
    assert api.get("/api/issues/").status_code == 401
