"""realtime/lean.py: the hot POSTs answered without DRF's machinery, exactly as DRF answers them.

Each case is posted twice on fresh state: as a client normally sends it (the
lean path when the case is plain) and with an ``Accept`` the lean path leaves
to DRF (``application/json; q=1``, negotiated by DRF to the same renderer).
Status, body and headers must match; ``APIView.initial`` (DRF's
authentication, permissions and throttles) tells which path answered.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.views import APIView

from issues import events
from issues.models import Issue
from realtime.models import ChannelSequence, Message
from tests.conftest import access_token

pytestmark = pytest.mark.django_db(transaction=True)

FORCE_DRF = "application/json; q=1"
BROADCAST = "/api/realtime/broadcast/"
EVENTS = "/api/events/"


@pytest.fixture(autouse=True)
def quiet(monkeypatch, settings):
    monkeypatch.setattr(events, "schedule_flush", lambda issue_id, delay: None)
    settings.REALTIME_PUBLISH_THROTTLE = "1000/min"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def drf_calls(monkeypatch):
    calls = []
    original = APIView.initial

    def initial(self, request, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "initial", initial)
    return calls


def reset() -> None:
    Message.objects.all().delete()
    ChannelSequence.objects.all().delete()
    Issue.objects.all().delete()
    cache.clear()


def post(path: str, body, *, token: str | None, accept: str | None = None, content_type="application/json"):
    headers = {}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if accept:
        headers["HTTP_ACCEPT"] = accept
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return Client().post(path, raw, content_type=content_type, **headers)


def comparable(response) -> tuple:
    body = json.loads(response.content) if response.content else None
    if isinstance(body, dict):  # the envelope's time differs between the two posts
        body = {k: v for k, v in body.items() if k != "ts"}
    if isinstance(body, (dict, list)) and "issue_id" in str(body):  # ids differ: compare their pattern
        items = body if isinstance(body, list) else [body]
        ranks: dict[str, int] = {}
        items = [{**i, "issue_id": ranks.setdefault(i["issue_id"], len(ranks))} for i in items]
        body = items if isinstance(body, list) else items[0]
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() != "content-length"}
    return response.status_code, body, headers


def both(path, body, token, **kwargs) -> tuple[tuple, tuple]:
    reset()
    lean = comparable(post(path, body, token=token, **kwargs))
    reset()
    drf = comparable(post(path, body, token=token, accept=FORCE_DRF, **kwargs))
    return lean, drf


PLAIN = [
    (BROADCAST, {"channel": "global", "message": {"type": "announcement", "message": "x"}}),
    (EVENTS, {"title": "TypeError", "culprit": "app.py", "level": "error"}),
    (EVENTS, [{"title": "A"}, {"title": "B", "fingerprint": "fp-b"}, {"title": "A"}]),
]


@pytest.mark.parametrize("path,body", PLAIN, ids=["broadcast", "one event", "a list"])
def test_a_plain_post_takes_the_lean_path_and_answers_as_drf(staff, drf_calls, path, body):
    token = access_token(staff)
    lean, drf = both(path, body, token)
    assert lean == drf
    assert lean[0] == 202
    assert lean[2]["content-type"] == "application/json" and lean[2]["allow"] == "POST, OPTIONS"
    assert drf_calls == [drf_calls[0]]  # only the forced post went through DRF's initial()


OTHERS = [
    ("no token", BROADCAST, {"channel": "global", "message": {"type": "a"}}, None, {}),
    ("bad token", BROADCAST, {"channel": "global", "message": {"type": "a"}}, "not.a.jwt", {}),
    ("not staff", BROADCAST, {"channel": "global", "message": {"type": "a"}}, "alice", {}),
    ("bad channel", BROADCAST, {"channel": "nope:1:2", "message": {"type": "a"}}, "staff", {}),
    ("no type", BROADCAST, {"channel": "global", "message": {}}, "staff", {}),
    ("not json", EVENTS, b"{not json", "staff", {}),
    ("form", EVENTS, b"title=x", "staff", {"content_type": "application/x-www-form-urlencoded"}),
    ("bad level", EVENTS, {"title": "x", "level": "catastrophic"}, "staff", {}),
    ("empty list", EVENTS, [], "staff", {}),
    ("blank title", EVENTS, {"title": "  "}, "staff", {}),
]


@pytest.mark.parametrize("name,path,body,who,extra", OTHERS, ids=[o[0] for o in OTHERS])
def test_anything_else_is_drfs_answer(staff, alice, drf_calls, name, path, body, who, extra):
    token = {"staff": access_token(staff), "alice": access_token(alice)}.get(who, who)
    lean, drf = both(path, body, token, **extra)
    assert lean == drf
    assert lean[0] in (400, 401, 403, 415), lean
    assert len(drf_calls) == 2  # both went through DRF


def test_throttled_is_drfs_429_and_counted_once(staff, settings, drf_calls):
    settings.REALTIME_PUBLISH_THROTTLE = "2/min"
    token = access_token(staff)
    body = {"channel": "global", "message": {"type": "a"}}
    statuses = [post(BROADCAST, body, token=token).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    assert drf_calls == ["BroadcastView"]  # the third: refused by the lean path's throttle check, answered by DRF
    # An invalid body is not counted by the lean path before DRF counts it.
    cache.clear()
    assert post(BROADCAST, {"channel": "global"}, token=token).status_code == 400
    assert post(BROADCAST, body, token=token).status_code == 202
    assert post(BROADCAST, body, token=token).status_code == 429


def test_a_publication_refused_as_too_large_is_the_handlers_400(staff, settings, drf_calls):
    settings.REALTIME_MAX_PUBLICATION_SIZE = 200
    token = access_token(staff)
    body = {"channel": "global", "message": {"type": "a", "text": "x" * 60}}
    lean, drf = both(BROADCAST, body, token)
    assert lean == drf and lean[0] == 400, lean
