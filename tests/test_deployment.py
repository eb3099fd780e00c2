"""A TLS deployment configured with environment variables only: ``check --deploy`` is clean,
and the pages carry a Content-Security-Policy (README "Deploying behind TLS")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TLS_ENV = {
    "SECRET_KEY": "deploy-test-" + "q8ZpL2vX" * 8,
    "DEBUG": "false",
    "ALLOWED_HOSTS": "dexter.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}


def check_deploy(extra: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in TLS_ENV and not k.startswith("SECURE_")}
    env.update(extra)
    env["DEXTER_ENV_FILE"] = os.devnull  # no developer's .env in the way
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_env_vars_only():
    result = check_deploy(TLS_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_without_the_tls_variables_check_deploy_names_them():
    result = check_deploy({k: v for k, v in TLS_ENV.items() if not k.startswith(("SECURE_", "SESSION_", "CSRF_"))})
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


@pytest.mark.django_db
def test_dashboard_has_a_content_security_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_ssl_redirect_and_hsts_follow_the_settings(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    response = client.get("/")
    assert response.status_code == 301 and response.headers["Location"].startswith("https://")
    secure = client.get("/", secure=True)
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=3600")
