"""Shared fixtures: users and tokens, WebSocket communicators, and the services switch.

REQUIRE_SERVICES=1 (CI) turns "program not installed, skipping" into a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = ["tests.services"]


def require_program(name: str, *candidates: str) -> str:
    """Path of an installed program, else skip (or fail under REQUIRE_SERVICES=1)."""
    for candidate in (name, *candidates):
        path = shutil.which(candidate) or (
            candidate if os.path.isabs(candidate) and os.path.exists(candidate) else None
        )
        if path:
            return path
    message = f"{name} is not installed"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory):
    """Tests use a SQLite file, not shared-cache memory: the consumer, the hub's
    thread and the test all write, and only a file gives them busy-waiting locks
    instead of "database table is locked" errors."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True)
def _fresh_hub():
    """Each test gets a fresh per-process hub (the server side of consumer tests)."""
    from alerts import rules
    from dexter import auth
    from realtime.hub import reset_hub

    reset_hub()
    auth.clear()  # and no API token answer cached by an earlier test (dexter/auth.py)
    rules.forget()  # nor active alerts (alerts/rules.py): a test database's flush sends no signals
    yield
    reset_hub()


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, *, staff: bool = False, password: str = "pw-" + "x" * 8):
        return django_user_model.objects.create_user(
            username=username, password=password, is_staff=staff, is_superuser=staff
        )

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def staff(make_user):
    return make_user("admin", staff=True)


def access_token(user) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


@pytest.fixture
def api(db):
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def auth_api(db):
    """An APIClient signed in as the given user with a JWT, as a browser would be."""
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
        return client

    return make
