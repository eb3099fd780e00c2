"""Settings (realtime/conf.py): one place, the environment and ``.env`` read, every bad value one line at start-up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from realtime import conf

ROOT = Path(__file__).resolve().parents[2]


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run manage.py in a fresh process with ``env`` on top of a clean copy of ours."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("WEBSOCKET_", "REALTIME_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("WEBSOCKET_MAX_CONNECTIONS", "25", 25),
        ("WEBSOCKET_ENABLED", "false", False),
        ("WEBSOCKET_ENABLED", " Yes ", True),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "2.5", 2.5),
        ("WEBSOCKET_ALLOWED_ORIGINS", "https://a.example, b.example", ["https://a.example", "b.example"]),
        ("REALTIME_CHANNEL_POLICY", "tests.realtime.test_conf.policy", "tests.realtime.test_conf.policy"),
    ],
)
def test_a_setting_comes_from_the_environment_when_the_settings_do_not_set_it(monkeypatch, name, text, expected):
    monkeypatch.setenv(name, text)
    assert conf.get(name) == expected


def test_the_django_setting_wins_over_the_environment(monkeypatch, settings):
    monkeypatch.setenv("WEBSOCKET_MAX_CONNECTIONS", "25")
    settings.WEBSOCKET_MAX_CONNECTIONS = 7
    assert conf.get("WEBSOCKET_MAX_CONNECTIONS") == 7


def test_unset_and_empty_give_the_default(monkeypatch):
    monkeypatch.setenv("WEBSOCKET_MAX_SUBSCRIPTIONS", "")
    assert conf.get("WEBSOCKET_MAX_SUBSCRIPTIONS") == conf.DEFAULTS["WEBSOCKET_MAX_SUBSCRIPTIONS"]


@pytest.mark.parametrize(
    ("name", "text", "why"),
    [
        ("WEBSOCKET_MAX_CONNECTIONS", "abc", "is not an integer"),
        ("WEBSOCKET_MAX_CONNECTIONS", "1.5", "is not an integer"),
        ("WEBSOCKET_ENABLED", "flase", "is not a boolean"),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "0", "must be greater than 0"),
        ("WEBSOCKET_HEARTBEAT_INTERVAL", "nan", "is not a finite number"),
        ("WEBSOCKET_PRESENCE_GRACE", "-1", "must not be negative"),
        ("WEBSOCKET_MAX_MESSAGE_SIZE", "2000000", "must be at most 1048576"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_setting_and_the_value(monkeypatch, name, text, why):
    monkeypatch.setenv(name, text)
    with pytest.raises(conf.InvalidSetting) as exc:
        conf.get(name)
    assert str(exc.value).startswith(f"{name}={text!r} (from the environment) {why}")
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("WEBSOCKET_MAX_CONNECTIONS", "abc", "is not an integer"),
        ("WEBSOCKET_MAX_CONNECTIONS", True, "is not an integer"),
        ("WEBSOCKET_ENABLED", 1, "is not a boolean"),
        ("WEBSOCKET_ALLOWED_ORIGINS", [1], "is not a list of strings"),
    ],
)
def test_a_bad_django_setting_is_one_line_too(settings, name, value, why):
    setattr(settings, name, value)
    with pytest.raises(conf.InvalidSetting, match="^" + re.escape(f"{name}={value!r} {why}")):
        conf.get(name)


def test_the_system_check_names_every_bad_setting(monkeypatch):
    monkeypatch.setenv("WEBSOCKET_MAX_CONNECTIONS", "abc")
    monkeypatch.setenv("WEBSOCKET_ENABLED", "flase")
    monkeypatch.setenv("WEBSOCKET_HEARTBEAT_INTERVAL", "0")
    with pytest.raises(SystemCheckError) as exc:
        call_command("check")
    text = str(exc.value)
    assert "(realtime.E001) WEBSOCKET_MAX_CONNECTIONS='abc' (from the environment) is not an integer" in text
    assert "WEBSOCKET_ENABLED='flase'" in text and "WEBSOCKET_HEARTBEAT_INTERVAL='0'" in text


def test_a_policy_that_cannot_be_imported_fails_the_check(settings):
    settings.REALTIME_CHANNEL_POLICY = "realtime.policy.no_such_policy"
    with pytest.raises(SystemCheckError, match="REALTIME_CHANNEL_POLICY='realtime.policy.no_such_policy' cannot"):
        call_command("check")


def test_good_settings_pass_the_check():
    call_command("check")


def test_a_project_setting_read_with_env_is_checked_too():
    reader = conf.EnvReader()
    os.environ["DEXTER_TEST_THREADS"] = "many"
    try:
        assert reader.int("DEXTER_TEST_THREADS", 4) == 4  # the default meanwhile
    finally:
        del os.environ["DEXTER_TEST_THREADS"]
    assert reader.problems == ["DEXTER_TEST_THREADS='many' (from the environment) is not an integer"]


def test_manage_py_check_fails_in_one_line_per_bad_setting():
    out = manage("check", env={"WEBSOCKET_MAX_CONNECTIONS": "abc", "DATABASE_CONN_MAX_AGE": "x"})
    assert out.returncode == 1
    assert "WEBSOCKET_MAX_CONNECTIONS='abc' (from the environment) is not an integer" in out.stderr
    assert "DATABASE_CONN_MAX_AGE='x' (from the environment) is not an integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_runrealtime_refuses_to_start_with_a_bad_setting():
    out = manage("runrealtime", "-p", "1", env={"WEBSOCKET_ENABLED": "flase"})
    assert out.returncode == 1
    assert "WEBSOCKET_ENABLED='flase' (from the environment) is not a boolean" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_dotenv_file_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("WEBSOCKET_MAX_CONNECTIONS=7\nWEBSOCKET_MAX_SUBSCRIPTIONS=9\n")
    show = "from realtime.conf import get; print(get('WEBSOCKET_MAX_CONNECTIONS'), get('WEBSOCKET_MAX_SUBSCRIPTIONS'))"
    out = manage("shell", "-c", show, env={"DEXTER_ENV_FILE": str(dotenv), "WEBSOCKET_MAX_SUBSCRIPTIONS": "3"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].split() == ["7", "3"]


def test_a_bad_value_in_dotenv_fails_the_check(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("WEBSOCKET_HEARTBEAT_INTERVAL=0\n")
    out = manage("check", env={"DEXTER_ENV_FILE": str(dotenv)})
    assert out.returncode == 1 and "WEBSOCKET_HEARTBEAT_INTERVAL='0'" in out.stderr


def policy(user, channel):
    return None
