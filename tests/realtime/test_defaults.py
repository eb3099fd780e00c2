"""Working defaults for a project that installs realtime (docs/integrating.md): nothing to configure first."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import cache

from realtime import conf
from realtime.client.cli import parse_args
from realtime.client.endpoints import token_endpoint
from tests.realtime.helpers import Client

BODY = {"channel": "global", "message": {"type": "announcement", "message": "hi"}}


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()
    yield
    cache.clear()


def test_broadcast_works_without_a_throttle_scope_configured(settings, auth_api, staff):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    assert "realtime_publish" not in rates  # Dexter, like a fresh project, configures none
    assert auth_api(staff).post("/api/realtime/broadcast/", BODY, format="json").status_code == 202


def test_the_default_publish_rate_is_a_setting(settings, auth_api, staff):
    settings.REALTIME_PUBLISH_THROTTLE = "1/min"
    client = auth_api(staff)
    assert client.post("/api/realtime/broadcast/", BODY, format="json").status_code == 202
    assert client.post("/api/realtime/broadcast/", BODY, format="json").status_code == 429


def test_a_bad_publish_rate_is_a_one_line_setting_error(settings):
    settings.REALTIME_PUBLISH_THROTTLE = "lots"
    with pytest.raises(conf.InvalidSetting, match="^REALTIME_PUBLISH_THROTTLE='lots' is not a rate"):
        conf.get("REALTIME_PUBLISH_THROTTLE")


@pytest.mark.parametrize(
    ("token_url", "expected"),
    [
        (None, "http://shop.example:8000/api/auth/token/"),
        ("/auth/jwt/create/", "http://shop.example:8000/auth/jwt/create/"),
        ("auth/jwt/create/", "http://shop.example:8000/auth/jwt/create/"),
        ("https://sso.example/token", "https://sso.example/token"),
    ],
)
def test_the_cli_token_url_is_configurable(token_url, expected):
    assert token_endpoint("ws://shop.example:8000", token_url) == expected


def test_the_cli_takes_the_token_url_from_a_flag_or_the_environment(monkeypatch):
    assert parse_args(["--token-url", "/auth/jwt/create/"]).token_url == "/auth/jwt/create/"
    monkeypatch.setenv("DEXTER_TOKEN_URL", "/from/env/")
    assert parse_args([]).token_url == "/from/env/"


def test_debug_without_allowed_hosts_allows_what_django_serves(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    settings.WEBSOCKET_ALLOWED_ORIGINS = []
    assert conf.allowed_origins() == [".localhost", "127.0.0.1", "[::1]"]
    settings.DEBUG = False
    assert conf.allowed_origins() == []


@pytest.mark.django_db(transaction=True)
async def test_a_refused_origin_is_a_warning_naming_it_once(settings, caplog):
    from realtime import origins

    origins._warned_origins.clear()
    settings.ALLOWED_HOSTS = ["shop.example"]
    caplog.set_level(logging.DEBUG, logger="realtime")
    for _ in range(2):
        assert (await Client(headers=[(b"origin", b"http://localhost:3000")]).connect())[0] is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "origin" in r.getMessage()]
    assert len(warnings) == 1
    assert "'http://localhost:3000'" in warnings[0].getMessage() and "ALLOWED_HOSTS" in warnings[0].getMessage()
